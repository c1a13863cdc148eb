"""RQ jobs. They take ids, never objects, and are idempotent by outbox id.

RQ runs jobs synchronously; each job runs its async body in a fresh event loop and opens (and
closes) its own store and channel clients inside it, since those are bound to their loop.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelError, TransientChannelError
from channels.registry import SENDERS
from gateway.models import Channel, MessageKind, OutboundMessage, OutboxKind, OutboxStatus
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Contact, ContactIdentity, OutboxRow, Ticket, TicketMessage
from gateway.store.types import utcnow
from gateway.surveys import survey_token
from workers.templates import promise, render, survey_link

log = logging.getLogger(__name__)


def deliver(outbox_id: int) -> str:
    """Deliver one outbox row on its channel. Returns what happened, for the job's result."""
    return asyncio.run(deliver_async(outbox_id, Settings()))


async def deliver_async(outbox_id: int, settings: Settings) -> str:
    store = Store(settings.database_url)
    try:
        async with store.read() as session:
            row = await session.get_one(OutboxRow, outbox_id)
            if row.status == OutboxStatus.SENT.value:
                return "already sent"
            outbound = await _build(session, row, settings)
        factory = SENDERS.get(Channel(row.channel))
        if factory is None or outbound is None:
            reason = (
                f"no sender configured for channel {row.channel}"
                if factory is None
                else "the contact has no reachable identity on this channel"
            )
            await _mark(store, outbox_id, OutboxStatus.FAILED, reason)
            return f"failed: {reason}"
        try:
            receipt = await factory(settings).send(outbound)
        except TransientChannelError as exc:
            await _mark(store, outbox_id, None, str(exc))
            raise  # RQ retries it with backoff
        except ChannelError as exc:
            await _mark(store, outbox_id, OutboxStatus.FAILED, str(exc))
            return f"failed: {exc}"
        await _mark(store, outbox_id, OutboxStatus.SENT, None, external_id=receipt.external_id)
        return "sent"
    finally:
        await store.close()


def _survey_url(settings: Settings, ticket_id: int) -> str | None:
    if settings.public_url is None or settings.secret_key is None:
        return None
    expires = utcnow() + timedelta(days=settings.survey.token_days)
    token = survey_token(settings.secret_key.get_secret_value(), ticket_id, expires)
    return f"{settings.public_url.rstrip('/')}/survey/{token}"


async def _build(
    session: AsyncSession, row: OutboxRow, settings: Settings
) -> OutboundMessage | None:
    recipient = await session.scalar(
        select(ContactIdentity.external_user_id)
        .where(
            ContactIdentity.contact_id == row.contact_id,
            ContactIdentity.channel == row.channel,
            ContactIdentity.reachable.is_(True),
        )
        .order_by(ContactIdentity.id.desc())
        .limit(1)
    )
    if recipient is None:
        return None
    contact = await session.get_one(Contact, row.contact_id)
    ticket = await session.get(Ticket, row.ticket_id) if row.ticket_id else None
    if row.kind == OutboxKind.REPLY.value and row.message_id is not None:
        # A reply carries its stored message; a notice's message_id only names its cause.
        text = (await session.get_one(TicketMessage, row.message_id)).text
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
    reply_meta: dict[str, object] = {}
    if ticket is not None:
        latest = await session.scalar(
            select(TicketMessage.channel_meta)
            .where(
                TicketMessage.ticket_id == ticket.id,
                TicketMessage.channel == row.channel,
                TicketMessage.kind == MessageKind.INCOMING.value,
            )
            .order_by(TicketMessage.id.desc())
            .limit(1)
        )
        reply_meta = dict(latest or {})
    return OutboundMessage(
        outbox_id=row.id,
        channel=Channel(row.channel),
        recipient=recipient,
        text=text,
        ticket_number=ticket.number if ticket else None,
        kind=OutboxKind(row.kind),
        template=row.template,
        message_id=row.message_id if row.kind == OutboxKind.REPLY.value else None,
        subject=ticket.subject if ticket else None,
        reply_meta=reply_meta,
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
    async with store.write() as session:
        row = await session.get_one(OutboxRow, outbox_id, with_for_update=True)
        row.attempts += 1
        row.last_error = error
        row.external_id = external_id or row.external_id
        if status is not None:
            row.status = status.value
        if status is OutboxStatus.SENT:
            row.sent_at = utcnow()
