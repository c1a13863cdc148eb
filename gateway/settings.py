"""One validated settings object, read from ``GATEWAY_*`` environment variables and ``.env``.

Nested sections use ``__``: ``GATEWAY_TELEGRAM__TOKEN`` sets ``settings.telegram.token``.
"""

from __future__ import annotations

import re
from datetime import date, time
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_SQL_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


class TelegramMode(StrEnum):
    WEBHOOK = "webhook"
    POLLING = "polling"


class WebchatSettings(BaseModel):
    """The web chat channel."""

    enabled: bool = True
    origins: tuple[str, ...] = ()
    """Allowed ``Origin`` values for the widget's WebSocket; empty allows same-origin only."""
    max_text_bytes: int = Field(default=4096, gt=0)
    """Longest customer message (UTF-8 bytes); longer ones get an error frame, nothing stored."""
    max_frame_bytes: int = Field(default=32 * 1024, gt=0)
    """WebSocket ``max_msg_size``: a larger frame closes the socket (code 1009)."""
    rate_burst: int = Field(default=20, gt=0)
    """Messages one session may send at once before the rate limit applies."""
    rate_per_second: float = Field(default=5.0, gt=0)
    """Sustained messages per second per session."""
    sessions_burst: int = Field(default=20, gt=0)
    """New chat sessions one IP address may open at once."""
    sessions_per_minute: float = Field(default=10.0, gt=0)
    """Sustained new chat sessions per minute per IP address."""
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    """WebSocket ping interval; a peer that misses the pong is closed."""
    long_poll_seconds: float = Field(default=25.0, gt=0)
    """How long ``GET /api/v1/webchat/messages`` waits for something new."""
    history_limit: int = Field(default=200, gt=0)
    """Most messages one resume returns (the latest ones)."""
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    """Largest file a customer uploads in the widget, or an agent sends to a web chat (413 past
    it): a screenshot or a phone photo, not a video library."""
    attachment_dir: str = "var/attachments"
    """The attachment store (shared with email and Telegram): ``<dir>/<sha256>``."""
    upload_burst: int = Field(default=10, gt=0)
    """Files one session may upload at once before the upload limit applies."""
    uploads_per_minute: float = Field(default=6.0, gt=0)
    """Sustained uploads per minute per session: with the message budget alone (5 a second),
    one session could write 50 MB a second to the disk."""


class MailSecurity(StrEnum):
    """How a mail connection is protected: implicit TLS, STARTTLS, or none (loopback only)."""

    TLS = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class EmailSettings(BaseModel):
    """The email channel (IMAP in, SMTP out)."""

    enabled: bool = False
    address: str | None = None
    """The support address customers write to; mail From it is our own and is dropped."""
    from_name: str | None = None
    imap_host: str = "127.0.0.1"
    imap_port: int = 993
    imap_security: MailSecurity = MailSecurity.TLS
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_mailboxes: tuple[str, ...] = ("INBOX",)
    imap_idle_seconds: float = Field(default=25 * 60, gt=0)
    """IDLE is re-issued after this long (RFC 2177: servers may drop it after 30 minutes)."""
    imap_poll_seconds: float = Field(default=60, gt=0)
    """Polling interval when the server has no IDLE."""
    imap_timeout: float = Field(default=30, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_security: MailSecurity = MailSecurity.STARTTLS
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(default=30, gt=0)
    ca_file: str | None = None
    """CA bundle to verify the IMAP and SMTP servers' certificates with, instead of the system's
    trust store (for a private CA; verification stays on)."""
    reply_domain: str | None = None
    """Domain of the Message-IDs we mint and of the reply address; the address's by default."""
    reply_tokens: bool = False
    """Send with a signed ``Reply-To: support+<token>@domain`` that threads the answer."""
    auto_reply_cap: int = Field(default=10, ge=0)
    auto_reply_window_minutes: int = Field(default=180, gt=0)
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    attachment_dir: str = "var/attachments"
    max_attempts: int = Field(default=5, ge=1)
    """Tries of one mail before it is parked with its raw bytes and the reason."""

    @model_validator(mode="after")
    def _needs_credentials(self) -> EmailSettings:
        if self.enabled:
            for name in ("address", "imap_user", "imap_password"):
                if getattr(self, name) is None:
                    raise ValueError(
                        f"GATEWAY_EMAIL__{name.upper()} is required when email is enabled"
                    )
        # Passwords never cross a network in the clear: plain only to a loopback server.
        for proto in ("imap", "smtp"):
            security = getattr(self, f"{proto}_security")
            host = getattr(self, f"{proto}_host")
            if security is MailSecurity.PLAIN and host not in _LOOPBACK_HOSTS:
                raise ValueError(
                    f"GATEWAY_EMAIL__{proto.upper()}_SECURITY=plain is allowed only on loopback, "
                    f"not {host}"
                )
        return self

    @property
    def domain(self) -> str:
        """The domain of our Message-IDs and reply addresses."""
        if self.reply_domain:
            return self.reply_domain
        if self.address and "@" in self.address:
            return self.address.rsplit("@", 1)[1].lower()
        return "localhost"


_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
"""What Telegram takes as a webhook's ``secret_token`` (https://core.telegram.org/bots/api#setwebhook)."""


class TelegramSettings(BaseModel):
    """The Telegram channel."""

    enabled: bool = False
    token: SecretStr | None = None
    mode: TelegramMode = TelegramMode.WEBHOOK
    base_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_max_connections: int | None = Field(default=None, ge=1, le=100)
    """How many webhook requests Telegram keeps open at once (``setWebhook``'s
    ``max_connections``: Telegram's default 40 when unset, at most 100). Each open request is
    one update waiting for its commit: a busy bot raises it (``bench/telegram.py``)."""
    allowed_updates: tuple[str, ...] = (
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
        "channel_post",
    )
    """Update kinds Telegram sends us (``setWebhook``/``getUpdates`` ``allowed_updates``); channel
    posts are asked for only to be counted and ignored; ``my_chat_member`` says a user blocked
    or unblocked the bot."""
    attachment_max_bytes: int = Field(default=20 * 1024 * 1024, ge=0)
    """Files larger than this are not downloaded (the Bot API's ``getFile`` stops at 20 MB)."""
    attachment_dir: str = "var/attachments"
    """The attachment store (shared with email): ``<dir>/<sha256>``, ``ref`` = that path."""
    poll_timeout: int = Field(default=30, ge=0, le=50)
    """Long-poll seconds of each ``getUpdates`` in polling mode."""
    max_retry_wait: float = Field(default=5.0, ge=0, le=60)
    """A ``RetryAfter`` up to this many seconds is waited out inside one send; longer ones go
    back to the queue with the delay Telegram asked for. At most a minute: a job delivers up to
    20 rows within RQ's 180 s, and a worker killed in the wait delivers none of the rest."""
    rate_per_second: float = Field(default=30, ge=0)
    """Messages a second the bot sends across all chats (Telegram asks bots to stay near 30,
    https://core.telegram.org/bots/faq); 0 turns the pacing off. Groups also keep to 20 a
    minute."""
    rate_shared: bool = True
    """The rate is the bot's, shared by every process through Redis (``channels/telegram/
    pacing.py``); false: each process keeps to it alone (python-telegram-bot's
    ``AIORateLimiter``), and N processes send up to N times it."""

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's rule for setWebhook's secret_token: refused there, it failed only at
        # start-up's setWebhook, in a log line, while the settings looked fine.
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 of the characters A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _needs_secrets(self) -> TelegramSettings:
        if not self.enabled:
            return self
        if self.token is None:
            raise ValueError("GATEWAY_TELEGRAM__TOKEN is required when Telegram is enabled")
        if self.mode is TelegramMode.WEBHOOK and self.webhook_secret is None:
            raise ValueError("GATEWAY_TELEGRAM__WEBHOOK_SECRET is required in webhook mode")
        return self


class SurveySettings(BaseModel):
    """Satisfaction surveys (满意度回访) after a ticket closes."""

    delay_minutes: int = Field(default=0, ge=0)
    quiet_start: time = time(22, 0)
    quiet_end: time = time(8, 0)
    """No survey goes out between these, in the contact's time zone (else the shop's)."""
    bot_resolved: Literal["none", "one_question"] = "one_question"
    """Tickets the bot resolved: no survey, or the one-question (stars only) survey."""
    token_days: int = Field(default=14, gt=0)
    """How long an emailed survey link stays valid."""


def _known_zone(value: str) -> str:
    """``value`` if it names an IANA time zone; the one-line error otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class BusinessCalendar(BaseModel):
    """One team's working time: the SLA clock runs only inside it (off days and holidays, not)."""

    timezone: str | None = None
    """The calendar's time zone; the shop's (``GATEWAY_TIMEZONE``) when not set."""
    days: tuple[int, ...] = (1, 2, 3, 4, 5)
    """Working days, ISO numbers (1 is Monday, 7 is Sunday)."""
    start: time = time(9, 0)
    end: time = time(18, 0)
    holidays: tuple[date, ...] = ()

    @field_validator("days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 1 <= d <= 7 for d in value):
            raise ValueError("working days are ISO weekday numbers 1-7, at least one")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return value if value is None else _known_zone(value)

    @model_validator(mode="after")
    def _hours(self) -> BusinessCalendar:
        if self.start >= self.end:
            raise ValueError("a working day must start before it ends")
        return self


class SlaSettings(BaseModel):
    """Service-level targets, in hours, by priority (defaults from the operating procedure)."""

    first_response_hours: dict[str, float] = {"critical": 2, "urgent": 4, "normal": 24}
    resolution_hours: dict[str, float] = {"critical": 24, "urgent": 48, "normal": 120}
    update_hours: float = Field(default=24, gt=0)
    """An open ticket needs a progress update at least this often."""
    warn_at: float = Field(default=0.8, gt=0, lt=1)
    """Share of a target after which the assignee is warned."""
    calendars: dict[str, BusinessCalendar] = {}
    """Business hours by team name (``"*"``: every team not named); none: the clock runs 24x7."""
    calendars_file: str | None = None
    """A JSON file holding the same mapping (read at start; ``calendars`` entries win)."""


class Settings(BaseSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # A refused value is left out of the error's text: it may be a secret (a webhook secret
        # Telegram would not take), and whatever logs the error would write it out.
        hide_input_in_errors=True,
    )

    database_url: str = "sqlite+aiosqlite:///var/gateway.db"
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("GATEWAY_REDIS_URL", "REDIS_URL"),
    )
    secret_key: SecretStr | None = None
    timezone: str = "Asia/Shanghai"
    reopen_days: int = Field(default=7, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    demo: bool = False
    public_url: str | None = None
    """Where customers reach this gateway (for links in mail: surveys), e.g. https://help.shop."""
    log_level: str = "INFO"
    access_log: bool = False
    outbox_relay: bool = True
    """Run the outbox relay inside ``gateway serve`` (safe with several processes)."""
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    parked_replay_seconds: float = Field(default=60.0, gt=0)
    """How often ``gateway serve`` replays inputs parked for statement timeouts, and how long
    one stays parked before it is (:mod:`gateway.replay_sweep`)."""
    webchat: WebchatSettings = WebchatSettings()
    email: EmailSettings = EmailSettings()
    telegram: TelegramSettings = TelegramSettings()
    survey: SurveySettings = SurveySettings()
    sla: SlaSettings = SlaSettings()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from None
        if url.drivername not in _SQL_DRIVERS:
            raise ValueError(
                f"driver must be one of {', '.join(_SQL_DRIVERS)}, not {url.drivername}"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _known_zone(value)

    @model_validator(mode="after")
    def _webchat_needs_key(self) -> Settings:
        # Web chat signs its session tokens, email its Message-IDs and reply addresses.
        for section in ("webchat", "email"):
            if getattr(self, section).enabled and self.secret_key is None:
                raise ValueError(
                    f"GATEWAY_SECRET_KEY is required when {section} is enabled "
                    "(make one: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per invalid setting, naming its environment variable."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if loc:
            variable = "GATEWAY_" + "__".join(loc).upper()
            lines.append(f"{variable}: {message}")
        else:
            lines.append(message)
    return lines
