"""``SENDERS[Channel.EMAIL]``: delivers outbox rows by SMTP (aiosmtplib).

Errors follow the two tiers of ``channels.base``: a 4xx reply or a lost connection is
``TransientChannelError`` (RQ retries with backoff; RFC 5321 4.2.1: 4yz is "transient negative
completion"); a 5xx reply is ``ChannelError`` (the job parks the row as failed, visible on the
ticket). Automatic mail is capped per recipient (default 10 per 180 minutes, as FreeScout) so two
auto-responders can never ping-pong forever.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import datetime, timedelta

import aiosmtplib
from sqlalchemy import func, select

from channels.base import ChannelError, TransientChannelError
from channels.email.compose import compose
from channels.email.ids import Signer
from gateway.models import Channel, DeliveryReceipt, OutboundMessage, OutboxKind, OutboxStatus
from gateway.settings import EmailSettings, MailSecurity, Settings
from gateway.store import Store
from gateway.store.tables import OutboxRow
from gateway.store.types import utcnow


def signer_for(settings: Settings) -> Signer:
    """The signer of our Message-IDs; needs ``GATEWAY_SECRET_KEY``."""
    if settings.secret_key is None:
        raise ChannelError("GATEWAY_SECRET_KEY is required for the email channel")
    return Signer(settings.secret_key.get_secret_value(), settings.email.domain)


class EmailSender:
    """Sends one :class:`OutboundMessage` per call; a connection per send (jobs run one each)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.email: EmailSettings = settings.email
        self.store = store
        self.clock = clock

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        if not self.email.address:
            raise ChannelError("GATEWAY_EMAIL__ADDRESS is not set")
        if msg.kind is not OutboxKind.REPLY:
            await self._check_cap(msg)
        mail = compose(
            msg,
            sender=self.email.address,
            sender_name=self.email.from_name,
            signer=signer_for(self.settings),
            reply_tokens=self.email.reply_tokens,
            now=self.clock(),
        )
        message_id = str(mail["Message-ID"])
        try:
            e = self.email
            await aiosmtplib.send(
                mail,
                hostname=e.smtp_host,
                port=e.smtp_port,
                timeout=e.smtp_timeout,
                use_tls=e.smtp_security is MailSecurity.TLS,
                start_tls=e.smtp_security is MailSecurity.STARTTLS,
                cert_bundle=e.ca_file,
                username=e.smtp_user,
                password=e.smtp_password.get_secret_value() if e.smtp_password else None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            raise _by_code(min(codes) if codes else 550, str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, f"{exc.code} {exc.message}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(f"SMTP certificate not trusted: {exc.verify_message}") from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise TransientChannelError(f"SMTP connection failed: {exc}") from exc
        return DeliveryReceipt(external_id=message_id, channel_meta={"message_id": message_id})

    async def _check_cap(self, msg: OutboundMessage) -> None:
        cap = self.email.auto_reply_cap
        if cap == 0:
            return
        store = self.store or Store(self.settings.database_url)
        try:
            since = self.clock() - timedelta(minutes=self.email.auto_reply_window_minutes)
            async with store.read() as session:
                contact_id = await session.scalar(
                    select(OutboxRow.contact_id).where(OutboxRow.id == msg.outbox_id)
                )
                sent = await session.scalar(
                    select(func.count()).where(
                        OutboxRow.channel == Channel.EMAIL.value,
                        OutboxRow.contact_id == contact_id,
                        OutboxRow.kind != OutboxKind.REPLY.value,
                        OutboxRow.status == OutboxStatus.SENT.value,
                        OutboxRow.sent_at >= since,
                    )
                )
        finally:
            if self.store is None:
                await store.close()
        if (sent or 0) >= cap:
            raise ChannelError(
                f"automatic mail cap reached: {sent} in "
                f"{self.email.auto_reply_window_minutes} min to this recipient"
            )


def _by_code(code: int, text: str) -> ChannelError:
    if 400 <= code < 500:
        return TransientChannelError(f"SMTP {text}")
    return ChannelError(f"SMTP {text}")
