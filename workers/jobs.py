"""RQ jobs. They take ids, never objects, and are idempotent by outbox id.

RQ runs jobs synchronously. Each worker process keeps one event loop, its settings and its store
between jobs (:class:`_Process`): with ``SimpleWorker`` every job reuses them; a forking worker's
work horse makes its own and loses them when it exits (nothing loop-bound crosses a fork).

Exactly once: a row marked sent is never sent again, and a sender that can tell when a message
passes to the peer for good (``channels.base.HandsOver``: SMTP, just before the end of DATA) has
that moment recorded first (the row's ``external_id``), so a retry after the worker died waiting
for the peer's answer takes the message as delivered instead of sending it twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import timedelta

from rq import get_current_job
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import (
    ChannelError,
    HandsOver,
    KeepsConnections,
    OutboundSender,
    TransientChannelError,
)
from channels.registry import SENDERS
from gateway.models import (
    Channel,
    DeliveryReceipt,
    MessageKind,
    OutboundMessage,
    OutboxKind,
    OutboxStatus,
)
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Contact, ContactIdentity, OutboxRow, Ticket, TicketMessage
from gateway.store.types import utcnow
from gateway.surveys import survey_token
from workers.templates import promise, render, survey_link

log = logging.getLogger(__name__)

HANDED_OVER = "handed to the peer by an attempt that died before its answer: taken as delivered"


class _Process:
    """What one worker process keeps between jobs."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.settings = Settings()
        self.store = Store(self.settings.database_url)
        self.senders = Senders(self.settings)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.senders.aclose())
            self.loop.run_until_complete(self.store.close())
        finally:
            self.loop.close()


class Senders:
    """One sender per channel, kept open between deliveries where the sender can."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._made: dict[Channel, OutboundSender] = {}

    async def get(self, channel: Channel) -> OutboundSender | None:
        sender = self._made.get(channel)
        if sender is None:
            factory = SENDERS.get(channel)
            if factory is None:
                return None
            sender = factory(self.settings)
            if isinstance(sender, KeepsConnections):
                await sender.open()
            self._made[channel] = sender
        return sender

    async def aclose(self) -> None:
        made, self._made = list(self._made.values()), {}
        for sender in made:
            if isinstance(sender, KeepsConnections):
                await sender.aclose()


_process: _Process | None = None


def _this_process() -> _Process:
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = _Process()
    return _process


def deliver(outbox_id: int) -> str:
    """Deliver one outbox row on its channel. Returns what happened, for the job's result."""
    job = get_current_job()
    # RQ counts retries down before each retry: none left means this is the last try.
    last_try = job is None or not job.retries_left
    process = _this_process()
    try:
        return process.loop.run_until_complete(
            deliver_async(
                outbox_id,
                process.settings,
                store=process.store,
                senders=process.senders,
                last_try=last_try,
            )
        )
    except TransientChannelError:
        raise  # RQ retries it with backoff
    except BaseException:
        # A timeout or a crash may leave the loop mid-task: the next job starts afresh.
        global _process
        _process = None
        process.close()
        raise


async def deliver_async(
    outbox_id: int,
    settings: Settings,
    *,
    store: Store | None = None,
    senders: Senders | None = None,
    last_try: bool = False,
) -> str:
    """The job's body. A transient failure raises (for RQ to retry) unless ``last_try``, when
    the row is parked as failed with the reason instead. Without ``store`` and ``senders`` it
    makes its own and closes them."""
    own_store, own_senders = store is None, senders is None
    store = store or Store(settings.database_url)
    senders = senders or Senders(settings)
    try:
        async with store.read() as session:
            loaded = await _load(session, outbox_id)
            row = loaded.row
            if row.status == OutboxStatus.SENT.value:
                return "already sent"
            if row.external_id is not None:
                # An earlier attempt handed the message over and died before marking it.
                await _mark(store, outbox_id, OutboxStatus.SENT, HANDED_OVER)
                log.warning("delivery taken as done", extra={"outbox_id": outbox_id})
                return "already handed over"
        outbound = _build(loaded, settings)
        sender = await senders.get(Channel(row.channel)) if outbound is not None else None
        if sender is None or outbound is None:
            reason = (
                f"no sender configured for channel {row.channel}"
                if outbound is not None
                else "the contact has no reachable identity on this channel"
            )
            await _mark(store, outbox_id, OutboxStatus.FAILED, reason)
            return f"failed: {reason}"
        try:
            receipt = await _send(sender, outbound, store)
        except TransientChannelError as exc:
            await _mark(store, outbox_id, OutboxStatus.FAILED if last_try else None, str(exc))
            if last_try:
                return f"failed: {exc}"
            raise
        except ChannelError as exc:
            await _mark(store, outbox_id, OutboxStatus.FAILED, str(exc))
            return f"failed: {exc}"
        await _mark(store, outbox_id, OutboxStatus.SENT, None, external_id=receipt.external_id)
        return "sent"
    finally:
        if own_senders:
            await senders.aclose()
        if own_store:
            await store.close()


async def _send(sender: OutboundSender, outbound: OutboundMessage, store: Store) -> DeliveryReceipt:
    if not isinstance(sender, HandsOver):
        return await sender.send(outbound)

    async def handed_over(external_id: str) -> None:
        async with store.write() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == outbound.outbox_id)
                .values(external_id=external_id)
            )

    return await sender.send_handing_over(outbound, handed_over)


def _survey_url(settings: Settings, ticket_id: int) -> str | None:
    if settings.public_url is None or settings.secret_key is None:
        return None
    expires = utcnow() + timedelta(days=settings.survey.token_days)
    token = survey_token(settings.secret_key.get_secret_value(), ticket_id, expires)
    return f"{settings.public_url.rstrip('/')}/survey/{token}"


async def _load(session: AsyncSession, outbox_id: int) -> _Loaded:
    """The row and everything its message needs, in one round trip."""
    same_row = OutboxRow.id == outbox_id
    recipient = (
        select(ContactIdentity.external_user_id)
        .where(
            ContactIdentity.contact_id == OutboxRow.contact_id,
            ContactIdentity.channel == OutboxRow.channel,
            ContactIdentity.reachable.is_(True),
        )
        .order_by(ContactIdentity.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    # What the customer last wrote on this channel: replies thread onto it.
    latest_meta = (
        select(TicketMessage.channel_meta)
        .where(
            TicketMessage.ticket_id == OutboxRow.ticket_id,
            TicketMessage.channel == OutboxRow.channel,
            TicketMessage.kind == MessageKind.INCOMING.value,
        )
        .order_by(TicketMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    stored_text = (
        select(TicketMessage.text).where(TicketMessage.id == OutboxRow.message_id).scalar_subquery()
    )
    found = (
        await session.execute(
            select(OutboxRow, Contact, Ticket, recipient, latest_meta, stored_text)
            .join(Contact, Contact.id == OutboxRow.contact_id)
            .outerjoin(Ticket, Ticket.id == OutboxRow.ticket_id)
            .where(same_row)
        )
    ).one()
    return _Loaded(*found)


@dataclass(frozen=True, slots=True)
class _Loaded:
    row: OutboxRow
    contact: Contact
    ticket: Ticket | None
    recipient: str | None
    latest_meta: dict[str, object] | None
    stored_text: str | None


def _build(loaded: _Loaded, settings: Settings) -> OutboundMessage | None:
    row, contact, ticket = loaded.row, loaded.contact, loaded.ticket
    if loaded.recipient is None:
        return None
    if row.kind == OutboxKind.REPLY.value and row.message_id is not None:
        # A reply carries its stored message; a notice's message_id only names its cause.
        text = loaded.stored_text or ""
    else:
        values = {
            "number": ticket.number if ticket else "",
            "agent": str(row.payload.get("agent", "")),
            "text": str(row.payload.get("text", "")),
            "link": "",
        }
        if ticket is not None:
            values["promise"] = promise(ticket.priority, contact.locale)
            if row.kind == OutboxKind.SURVEY.value:
                values["link"] = survey_link(_survey_url(settings, ticket.id), contact.locale)
        text = render(row.template, contact.locale, **values)
    return OutboundMessage(
        outbox_id=row.id,
        channel=Channel(row.channel),
        recipient=loaded.recipient,
        text=text,
        ticket_number=ticket.number if ticket else None,
        kind=OutboxKind(row.kind),
        template=row.template,
        message_id=row.message_id if row.kind == OutboxKind.REPLY.value else None,
        subject=ticket.subject if ticket else None,
        reply_meta=dict(loaded.latest_meta or {}) if ticket is not None else {},
        locale=contact.locale,
        channel_meta=dict(row.payload),
    )


async def _mark(
    store: Store,
    outbox_id: int,
    status: OutboxStatus | None,
    error: str | None,
    *,
    external_id: str | None = None,
) -> None:
    values: dict[str, object] = {"attempts": OutboxRow.attempts + 1, "last_error": error}
    if status is OutboxStatus.SENT:
        values.update(status=status.value, sent_at=utcnow())
        if external_id is not None:
            values["external_id"] = external_id
    else:
        # Only a sent row keeps an external id; on any other row it would mean "handed over".
        values["external_id"] = None
        if status is not None:
            values["status"] = status.value
    async with store.write() as session:  # one statement: the row lock is the UPDATE's own
        await session.execute(update(OutboxRow).where(OutboxRow.id == outbox_id).values(values))
