"""Ingest: the one function every channel calls with an :class:`InboundMessage`.

In one transaction it dedupes the message, resolves the contact, finds (or opens, or reopens) the
conversation's ticket, appends the message and writes the outbox rows it owes. A channel acks its
message only after this returns (invariant 1); a replay returns the stored message and changes
nothing (invariant 2).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import models
from gateway.events import record_event
from gateway.models import (
    DONE_STATUSES,
    AuthorType,
    EventKind,
    InboundMessage,
    MessageKind,
    NeedType,
    OutboxKind,
    Priority,
    TicketStatus,
)
from gateway.numbering import next_ticket_number
from gateway.outbox import add_outbox
from gateway.store import Store
from gateway.store.tables import Contact, ContactIdentity, Ticket, TicketMessage
from gateway.store.types import utcnow

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingest stored (or found stored) for one inbound message."""

    message: models.TicketMessage
    ticket: models.Ticket
    contact: models.Contact
    duplicate: bool = False
    new_ticket: bool = False
    reopened: bool = False


def _lock_key(inbound: InboundMessage) -> int:
    digest = hashlib.blake2b(
        f"{inbound.channel}:{inbound.external_user_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class Ingest:
    """Stores inbound messages. Call it: ``result = await ingest(inbound)``."""

    def __init__(
        self,
        store: Store,
        *,
        zone: ZoneInfo,
        reopen_days: int = 7,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.zone = zone
        self.reopen_window = timedelta(days=reopen_days)
        self.clock = clock

    async def __call__(self, inbound: InboundMessage) -> IngestResult:
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                async with self.store.write() as session:
                    return await self._ingest(session, inbound)
            except IntegrityError:
                # A concurrent writer stored the same message or identity first. The transaction
                # rolled back whole; the next attempt finds what the winner stored.
                if attempt == _MAX_ATTEMPTS:
                    raise
                log.info("ingest conflict, retrying", extra={"attempt": attempt})
        raise AssertionError("unreachable")

    async def _ingest(self, session: AsyncSession, inbound: InboundMessage) -> IngestResult:
        if not self.store.is_sqlite:
            # One sender's messages are ingested one at a time, so two messages racing from a
            # new customer cannot open two tickets (SQLite already has a single writer).
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(inbound)}
            )
        stored = await session.scalar(
            select(TicketMessage).where(
                TicketMessage.channel == inbound.channel.value,
                TicketMessage.external_id == inbound.external_id,
            )
        )
        if stored is not None:
            ticket = await session.get_one(Ticket, stored.ticket_id)
            contact = await session.get_one(Contact, ticket.contact_id)
            return _result(stored, ticket, contact, duplicate=True)

        now = self.clock()
        contact = await self._resolve_contact(session, inbound, now)
        ticket, new_ticket, reopened = await self._find_ticket(session, inbound, contact, now)
        message = TicketMessage(
            ticket_id=ticket.id,
            kind=MessageKind.INCOMING.value,
            author_type=AuthorType.CUSTOMER.value,
            author_id=contact.id,
            channel=inbound.channel.value,
            external_id=inbound.external_id,
            text=inbound.text,
            attachments=[a.model_dump() for a in inbound.attachments],
            channel_meta=_meta(inbound),
            created_at=now,
        )
        session.add(message)
        ticket.updated_at = now
        await session.flush()
        if new_ticket and not inbound.auto_submitted:
            add_outbox(
                session,
                kind=OutboxKind.NOTICE,
                template="ticket_received",
                channel=inbound.channel,
                contact_id=contact.id,
                ticket_id=ticket.id,
                message_id=message.id,
                now=now,
            )
        return _result(message, ticket, contact, new_ticket=new_ticket, reopened=reopened)

    async def _resolve_contact(
        self, session: AsyncSession, inbound: InboundMessage, now: datetime
    ) -> Contact:
        identity = await session.scalar(
            select(ContactIdentity).where(
                ContactIdentity.channel == inbound.channel.value,
                ContactIdentity.external_user_id == inbound.external_user_id,
            )
        )
        if identity is not None:
            contact = await _current_contact(session, identity.contact_id)
        else:
            match = await _verified_match(session, inbound)
            if match is None:
                contact = Contact(created_at=now, vip=False)
                session.add(contact)
                await session.flush()
            else:
                contact = match
            session.add(
                ContactIdentity(
                    contact_id=contact.id,
                    channel=inbound.channel.value,
                    external_user_id=inbound.external_user_id,
                    reachable=True,
                    created_at=now,
                )
            )
        # Fill what we did not know; never overwrite what the contact or an agent set.
        if contact.name is None and inbound.sender_name:
            contact.name = inbound.sender_name
        if contact.email is None and inbound.email:
            contact.email = inbound.email.lower()
        if contact.phone is None and inbound.phone:
            contact.phone = inbound.phone
        if contact.locale is None and inbound.locale:
            contact.locale = inbound.locale
        return contact

    async def _find_ticket(
        self, session: AsyncSession, inbound: InboundMessage, contact: Contact, now: datetime
    ) -> tuple[Ticket, bool, bool]:
        ticket: Ticket | None = None
        if inbound.ticket_ref:
            ticket = await session.scalar(
                select(Ticket).where(
                    Ticket.number == inbound.ticket_ref, Ticket.contact_id == contact.id
                )
            )
            if ticket is None:
                log.info(
                    "ticket reference ignored: not the sender's", extra={"ref": inbound.ticket_ref}
                )
        if ticket is None and inbound.thread_key is not None:
            ticket = await session.scalar(
                select(Ticket)
                .where(
                    Ticket.contact_id == contact.id,
                    Ticket.channel == inbound.channel.value,
                    Ticket.thread_key == inbound.thread_key,
                )
                .order_by(Ticket.id.desc())
                .limit(1)
            )
        if ticket is None:
            return await self._open_ticket(session, inbound, contact, now), True, False
        if TicketStatus(ticket.status) not in DONE_STATUSES:
            return ticket, False, False
        done_at = ticket.closed_at or ticket.resolved_at or ticket.updated_at
        if now - done_at <= self.reopen_window:
            record_event(
                session, ticket, EventKind.REOPENED, ticket.status, TicketStatus.REOPENED, now
            )
            ticket.status = TicketStatus.REOPENED.value
            ticket.resolved_at = None
            ticket.closed_at = None
            return ticket, False, True
        follow_up = await self._open_ticket(session, inbound, contact, now, parent=ticket)
        return follow_up, True, False

    async def _open_ticket(
        self,
        session: AsyncSession,
        inbound: InboundMessage,
        contact: Contact,
        now: datetime,
        *,
        parent: Ticket | None = None,
    ) -> Ticket:
        ticket = Ticket(
            number=await next_ticket_number(session, now, self.zone),
            contact_id=contact.id,
            channel=inbound.channel.value,
            thread_key=inbound.thread_key,
            subject=inbound.subject,
            status=TicketStatus.NEW.value,
            priority=Priority.NORMAL.value,
            need_type=NeedType.INQUIRY.value,
            parent_id=parent.id if parent else None,
            resolved_by_bot=False,
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        await session.flush()
        record_event(session, ticket, EventKind.CREATED, None, TicketStatus.NEW, now)
        if parent is not None:
            record_event(session, ticket, EventKind.LINKED, None, parent.number, now)
        return ticket


def _meta(inbound: InboundMessage) -> dict[str, object]:
    """The message's stored metadata: the channel's own, plus what the router reads."""
    meta = dict(inbound.channel_meta)
    if inbound.locale:
        meta.setdefault("locale", inbound.locale)
    if inbound.auto_submitted:
        meta["auto_submitted"] = True
    return meta


async def _current_contact(session: AsyncSession, contact_id: int) -> Contact:
    """Follow merges to the surviving contact."""
    contact = await session.get_one(Contact, contact_id)
    seen = {contact.id}
    while contact.merged_into_id is not None and contact.merged_into_id not in seen:
        contact = await session.get_one(Contact, contact.merged_into_id)
        seen.add(contact.id)
    return contact


async def _verified_match(session: AsyncSession, inbound: InboundMessage) -> Contact | None:
    """A contact that owns this sender's verified email or phone: the same person, new channel."""
    conditions = []
    if inbound.email and inbound.email_verified:
        conditions.append(func.lower(Contact.email) == inbound.email.lower())
    if inbound.phone and inbound.phone_verified:
        conditions.append(Contact.phone == inbound.phone)
    for condition in conditions:
        contact = await session.scalar(
            select(Contact)
            .where(condition, Contact.merged_into_id.is_(None))
            .order_by(Contact.id)
            .limit(1)
        )
        if contact is not None:
            return contact
    return None


def _result(
    message: TicketMessage,
    ticket: Ticket,
    contact: Contact,
    *,
    duplicate: bool = False,
    new_ticket: bool = False,
    reopened: bool = False,
) -> IngestResult:
    return IngestResult(
        message=models.TicketMessage.model_validate(message),
        ticket=models.Ticket.model_validate(ticket),
        contact=models.Contact.model_validate(contact),
        duplicate=duplicate,
        new_ticket=new_ticket,
        reopened=reopened,
    )
