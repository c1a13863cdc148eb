"""One validated settings object, read from ``GATEWAY_*`` environment variables and ``.env``.

Nested sections use ``__``: ``GATEWAY_TELEGRAM__TOKEN`` sets ``settings.telegram.token``.
"""

from __future__ import annotations

from enum import StrEnum
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


class EmailSettings(BaseModel):
    """The email channel (IMAP in, SMTP out)."""

    enabled: bool = False
    address: str | None = None
    imap_host: str = "127.0.0.1"
    imap_port: int = 993
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None

    @model_validator(mode="after")
    def _needs_credentials(self) -> EmailSettings:
        if self.enabled:
            for name in ("address", "imap_user", "imap_password"):
                if getattr(self, name) is None:
                    raise ValueError(
                        f"GATEWAY_EMAIL__{name.upper()} is required when email is enabled"
                    )
        return self


class TelegramSettings(BaseModel):
    """The Telegram channel."""

    enabled: bool = False
    token: SecretStr | None = None
    mode: TelegramMode = TelegramMode.WEBHOOK
    base_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _needs_secrets(self) -> TelegramSettings:
        if not self.enabled:
            return self
        if self.token is None:
            raise ValueError("GATEWAY_TELEGRAM__TOKEN is required when Telegram is enabled")
        if self.mode is TelegramMode.WEBHOOK and self.webhook_secret is None:
            raise ValueError("GATEWAY_TELEGRAM__WEBHOOK_SECRET is required in webhook mode")
        return self


class Settings(BaseSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
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
    log_level: str = "INFO"
    access_log: bool = False
    outbox_relay: bool = True
    """Run the outbox relay inside ``gateway serve`` (safe with several processes)."""
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    webchat: WebchatSettings = WebchatSettings()
    email: EmailSettings = EmailSettings()
    telegram: TelegramSettings = TelegramSettings()

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
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _webchat_needs_key(self) -> Settings:
        if self.webchat.enabled and self.secret_key is None:
            raise ValueError(
                "GATEWAY_SECRET_KEY is required when the web chat is enabled "
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
