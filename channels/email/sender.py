"""``SENDERS[Channel.EMAIL]``: delivers outbox rows by SMTP (aiosmtplib).

Errors follow the two tiers of ``channels.base``: a 4xx reply or a lost connection is
``TransientChannelError`` (RQ retries with backoff; RFC 5321 4.2.1: 4yz is "transient negative
completion"); a 5xx reply is ``ChannelError`` (the job parks the row as failed, visible on the
ticket). Automatic mail is capped per recipient (default 10 per 180 minutes, as FreeScout) so two
auto-responders can never ping-pong forever.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from channels.attachment_store import read_stored
from channels.base import ChannelError, Handover, TransientChannelError
from channels.email.compose import compose
from channels.email.ids import Signer
from gateway.models import (
    Attachment,
    Channel,
    DeliveryReceipt,
    OutboundMessage,
    OutboxKind,
    OutboxStatus,
)
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
    """Sends one :class:`OutboundMessage` per call: a connection per send, or, between
    :meth:`open` and :meth:`aclose` (a worker process keeps its senders), SMTP connections and
    one store kept for every send: an idle connection is reused, one is added while all are
    busy (a job sends to several recipients at once), one that failed is dropped."""

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
        self._keep = False
        self._own_store = False
        self._idle: list[aiosmtplib.SMTP] = []
        self._capped: dict[int, int] = {}  # outbox id -> its contact, for the prepared rows
        self._counts: dict[int, int] = {}  # contact -> automatic mails sent in the window

    async def open(self) -> None:
        """Keep the SMTP connection (made at the first send) and a store until :meth:`aclose`."""
        self._keep = True
        if self.store is None:
            self.store, self._own_store = Store(self.settings.database_url), True

    async def aclose(self) -> None:
        self._keep = False
        idle, self._idle = self._idle, []
        for client in idle:
            if not client.is_connected:
                continue
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        if self._own_store and self.store is not None:
            await self.store.close()
            self.store, self._own_store = None, False

    def _new_client(self) -> aiosmtplib.SMTP:
        e = self.email
        return aiosmtplib.SMTP(
            hostname=e.smtp_host,
            port=e.smtp_port,
            timeout=e.smtp_timeout,
            use_tls=e.smtp_security is MailSecurity.TLS,
            start_tls=e.smtp_security is MailSecurity.STARTTLS,
            cert_bundle=e.ca_file,
            username=e.smtp_user,
            password=e.smtp_password.get_secret_value() if e.smtp_password else None,
        )

    async def _transmit(
        self, mail: EmailMessage, message_id: str, handover: Handover | None
    ) -> None:
        if not self._keep:
            async with self._new_client() as once:
                if handover is not None:
                    _hand_over_before_end_of_data(once, message_id, handover)
                await once.send_message(mail)
            return
        while self._idle and not self._idle[-1].is_connected:
            self._idle.pop()
        if self._idle:
            client = self._idle.pop()
        else:
            client = self._new_client()
            await client.connect()
        try:
            if handover is not None:
                _hand_over_before_end_of_data(client, message_id, handover)
            elif client.protocol is not None:  # the connection's own DATA, not an earlier hook
                vars(client.protocol).pop("execute_data_command", None)
            await client.send_message(mail)
        except BaseException:
            # A failed transaction leaves the session in an unknown state: start a new one.
            client.close()
            raise
        if self._keep:
            self._idle.append(client)
        else:  # closed while this send was under way
            client.close()

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        return await self.send_handing_over(msg, None)

    async def send_handing_over(
        self, msg: OutboundMessage, handover: Handover | None
    ) -> DeliveryReceipt:
        """Send ``msg``; ``handover(message_id)`` runs just before the end of DATA (the point
        after which the server may have the mail even if we never hear its 250)."""
        if not self.email.address:
            raise ChannelError("GATEWAY_EMAIL__ADDRESS is not set")
        if msg.kind is not OutboxKind.REPLY:
            await self._check_cap(msg)
        files = await asyncio.to_thread(_read_files, msg.attachments)
        mail = compose(
            msg,
            sender=self.email.address,
            sender_name=self.email.from_name,
            signer=signer_for(self.settings),
            reply_tokens=self.email.reply_tokens,
            now=self.clock(),
            files=files,
        )
        message_id = str(mail["Message-ID"])
        try:
            await self._transmit(mail, message_id, handover)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            raise _by_code(min(codes) if codes else 550, str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, f"{exc.code} {exc.message}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(f"SMTP certificate not trusted: {exc.verify_message}") from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise TransientChannelError(f"SMTP connection failed: {exc}") from exc
        self._count_sent(msg)
        return DeliveryReceipt(external_id=message_id, channel_meta={"message_id": message_id})

    async def prepare(self, outbox_ids: list[int]) -> None:
        """Count, in one query, the automatic mails already sent to each of these rows'
        recipients; :meth:`send` then checks the cap against these counts (and what it sends
        after them) instead of asking the database once per mail."""
        self._capped.clear()
        self._counts.clear()
        if self.email.auto_reply_cap == 0 or not outbox_ids:
            return
        async with self._reading() as session:
            rows = await session.execute(
                select(OutboxRow.id, OutboxRow.contact_id).where(OutboxRow.id.in_(outbox_ids))
            )
            self._capped = {outbox_id: contact_id for outbox_id, contact_id in rows.all()}
            contacts = set(self._capped.values())
            sent = aliased(OutboxRow)
            counts = await session.execute(
                self._sent_since(sent, sent.contact_id.in_(contacts))
                .add_columns(sent.contact_id)
                .group_by(sent.contact_id)
            )  # one pass over the sent rows for all the recipients, not one per row
            self._counts = dict.fromkeys(contacts, 0)
            self._counts.update({contact: int(n) for n, contact in counts.all()})

    def _sent_since(self, sent: Any, recipient: ColumnElement[bool]) -> Select[int]:
        """How many automatic mails went lately to the ``recipient`` rows of ``sent`` (the
        table or an alias of it)."""
        since = self.clock() - timedelta(minutes=self.email.auto_reply_window_minutes)
        return select(func.count()).where(
            sent.channel == Channel.EMAIL.value,
            recipient,
            sent.kind != OutboxKind.REPLY.value,
            sent.status == OutboxStatus.SENT.value,
            sent.sent_at >= since,
        )

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        store = self.store or Store(self.settings.database_url)
        try:
            async with store.read() as session:
                yield session
        finally:
            if self.store is None:
                await store.close()

    async def _check_cap(self, msg: OutboundMessage) -> None:
        cap = self.email.auto_reply_cap
        if cap == 0:
            return
        contact = self._capped.get(msg.outbox_id)
        if contact is not None:
            sent: int | None = self._counts[contact]
        else:
            async with self._reading() as session:
                contact_id = (
                    select(OutboxRow.contact_id)
                    .where(OutboxRow.id == msg.outbox_id)
                    .scalar_subquery()
                )
                sent = await session.scalar(
                    self._sent_since(OutboxRow, OutboxRow.contact_id == contact_id)
                )
        if (sent or 0) >= cap:
            raise ChannelError(
                f"automatic mail cap reached: {sent} in "
                f"{self.email.auto_reply_window_minutes} min to this recipient"
            )

    def _count_sent(self, msg: OutboundMessage) -> None:
        contact = self._capped.get(msg.outbox_id)
        if contact is not None and msg.kind is not OutboxKind.REPLY:
            self._counts[contact] += 1


def _by_code(code: int, text: str) -> ChannelError:
    if 400 <= code < 500:
        return TransientChannelError(f"SMTP {text}")
    return ChannelError(f"SMTP {text}")


def _hand_over_before_end_of_data(
    client: aiosmtplib.SMTP, message_id: str, handover: Handover
) -> None:
    """Make ``client``'s DATA call ``handover`` between the content and the final ``.``.

    RFC 5321 4.1.1.4: the mail is the server's once it has the end-of-data line, and it answers
    only then; a worker killed while waiting for that answer (RFC 1047's duplicate window)
    leaves mail delivered but unmarked. The job records the handover first, so its retry knows.
    The terminating line is sent as a bare "." command, byte for byte the same on the wire.
    """
    protocol = client.protocol
    if protocol is None:
        raise ChannelError("SMTP is not connected")

    async def data(
        message: bytes,
        timeout: float | None = None,  # noqa: ASYNC109 - aiosmtplib's signature
    ) -> aiosmtplib.SMTPResponse:
        body = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message))
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        start = await protocol.execute_command(b"DATA", timeout=timeout)
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol.write(body)
        try:
            await handover(message_id)
        except BaseException:
            client.close()  # without the final "." the server drops what it has
            raise
        done = await protocol.execute_command(b".", timeout=timeout)
        if done.code != 250:
            raise aiosmtplib.SMTPDataError(done.code, done.message)
        return done

    protocol.execute_data_command = data  # type: ignore[method-assign]


def _read_files(attachments: tuple[Attachment, ...]) -> list[tuple[Attachment, bytes]]:
    """The bytes of an agent's attachments, from the attachment store (blocking)."""
    return [(attachment, read_stored(attachment)) for attachment in attachments]
