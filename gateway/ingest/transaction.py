"""One batch of inbound messages, stored in one transaction with set-based statements.

The batch behaves exactly as if its messages had been ingested one after the other, in order:
a message repeated inside the batch is a replay of its first copy, the second message of a new
conversation threads onto the ticket the first one opened, and so on. What changes is the cost:
about a dozen statements per batch instead of a dozen per message. Which ticket each message
goes to is decided first (``planning.py``); this module reads, numbers and writes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import write_events
from gateway.ingest.acknowledgements import acknowledges
from gateway.ingest.contacts import resolve_contacts
from gateway.ingest.lookups import stored_messages
from gateway.ingest.planning import Planned, TicketState, plan_tickets
from gateway.ingest.result import IngestResult
from gateway.models import (
    AuthorType,
    InboundMessage,
    MessageKind,
    OutboxKind,
)
from gateway.numbering import reserve_ticket_numbers
from gateway.outbox import outbox_values, write_outbox
from gateway.sla import DEFAULT_POLICY, SlaPolicy
from gateway.store import on_postgres
from gateway.store.bulk import BulkInsert
from gateway.store.tables import Contact, Ticket, TicketMessage
from gateway.surveys import record_rating

log = logging.getLogger(__name__)

TICKETS: Table = Ticket.__table__  # type: ignore[assignment]
MESSAGES: Table = TicketMessage.__table__  # type: ignore[assignment]
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]

_TOUCHED = (
    "id",
    "status",
    "updated_at",
    "resolved_at",
    "closed_at",
    "waiting_since",
    "resolution_due_at",
)
"""Columns ingest may change on an existing ticket."""


_INSERT_TICKETS = BulkInsert(TICKETS, returning=TICKETS.c.id)
_INSERT_MESSAGES = BulkInsert(MESSAGES, returning=MESSAGES.c.id)
_TOUCH_TICKETS = (
    update(TICKETS)
    .where(TICKETS.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _TOUCHED if name != "id"})
)


def sender_lock_key(message: InboundMessage) -> int:
    """A 64-bit advisory-lock key per sender."""
    digest = hashlib.blake2b(
        f"{message.channel}:{message.external_user_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


async def ingest_batch(
    session: AsyncSession,
    batch: Sequence[InboundMessage],
    *,
    now: datetime,
    zone: ZoneInfo,
    reopen_window: timedelta,
    sla: SlaPolicy = DEFAULT_POLICY,
) -> list[IngestResult]:
    """Store ``batch`` in the caller's transaction; one result per message, in order."""
    # PostgreSQL: one sender's messages are ingested one batch at a time, so two batches
    # racing with a new customer's messages cannot open two tickets. Sorted: no lock-order
    # deadlocks. Taken by the first read (a round trip less per batch).
    locks = sorted({sender_lock_key(m) for m in batch}) if on_postgres(session) else []
    stored = await stored_messages(session, batch, locks=locks)
    first_of: dict[tuple[str, str], int] = {}
    fresh: list[InboundMessage] = []
    for index, message in enumerate(batch):
        key = (message.channel.value, message.external_id)
        if key not in stored and key not in first_of:
            first_of[key] = index
            fresh.append(message)

    planned: dict[tuple[str, str], Planned] = {}
    if fresh:
        contacts = await resolve_contacts(session, fresh, now)
        plans = await plan_tickets(session, fresh, contacts, now, reopen_window, sla)
        await _write(session, plans, now, zone)
        planned = {(p.message.channel.value, p.message.external_id): p for p in plans}

    replays = await _replayed(session, [stored[k] for k in stored])
    results = []
    for message in batch:
        key = (message.channel.value, message.external_id)
        if key in stored:
            results.append(replays[stored[key]["id"]])
            continue
        plan = planned[key]
        duplicate = first_of[key] != len(results)
        results.append(
            IngestResult(
                message_row=plan.row,
                ticket_row=plan.ticket.row,
                contact_row=plan.contact,
                duplicate=duplicate,
                new_ticket=plan.new_ticket and not duplicate,
                reopened=plan.reopened and not duplicate,
                routed=plan.row["routed_at"] is not None,
                notified=not duplicate and (_owes_notice(plan) or plan.rating is not None),
            )
        )
    return results


async def _replayed(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[int, IngestResult]:
    """Results for messages stored before this batch: changed nothing."""
    if not rows:
        return {}
    tickets = await session.execute(
        select(TICKETS).where(TICKETS.c.id.in_({r["ticket_id"] for r in rows}))
    )
    ticket_rows = {t["id"]: dict(t) for t in tickets.mappings()}
    contacts = await session.execute(
        select(CONTACTS).where(CONTACTS.c.id.in_({t["contact_id"] for t in ticket_rows.values()}))
    )
    contact_rows = {c["id"]: dict(c) for c in contacts.mappings()}
    results = {}
    for row in rows:
        ticket = ticket_rows[row["ticket_id"]]
        results[row["id"]] = IngestResult(
            message_row=row,
            ticket_row=ticket,
            contact_row=contact_rows[ticket["contact_id"]],
            duplicate=True,
        )
    return results


async def _write(
    session: AsyncSession, plans: list[Planned], now: datetime, zone: ZoneInfo
) -> None:
    """Insert the new tickets, messages, events and outbox rows; update the touched tickets."""
    tickets: dict[int, TicketState] = {}
    for plan in plans:
        tickets.setdefault(id(plan.ticket), plan.ticket)
    new = [t for t in tickets.values() if t.new]
    if new:
        numbers = await reserve_ticket_numbers(session, now, zone, len(new))
        for state, number in zip(new, numbers, strict=True):
            state.row["number"] = number
        columns = [c for c in new[0].row if c != "id"]
        created = await _INSERT_TICKETS(session, [{c: t.row[c] for c in columns} for t in new])
        for state, ticket_id in zip(new, created, strict=True):
            state.row["id"] = ticket_id
    # In id order, as the router locks them: a batch and a router never wait on each other in
    # a cycle (a deadlock costs PostgreSQL a second to find).
    touched = sorted((t for t in tickets.values() if t.touched), key=lambda t: t.row["id"])
    if touched:
        await session.execute(
            _TOUCH_TICKETS, [{f"b_{name}": t.row[name] for name in _TOUCHED} for t in touched]
        )
    events = [
        {
            "ticket_id": t.row["id"],
            "kind": kind.value,
            "old_value": old,
            "new_value": str(new_value) if new_value is not None else None,
            "actor_type": AuthorType.SYSTEM.value,
            "actor_id": None,
            "note": None,
            "created_at": now,
        }
        for t in tickets.values()
        for kind, old, new_value in t.events
    ]
    await write_events(session, events)

    for plan in plans:
        message = plan.message
        plan.row = {
            "ticket_id": plan.ticket.row["id"],
            "kind": MessageKind.INCOMING.value,
            "author_type": AuthorType.CUSTOMER.value,
            "author_id": plan.contact["id"],
            "channel": message.channel.value,
            "external_id": message.external_id,
            "text": message.text,
            "attachments": [a.model_dump() for a in message.attachments],
            "channel_meta": _meta(message, plan.rating),
            "created_at": now,
            "routed_at": now if _nothing_to_route(plan) else None,
        }
    inserted = await _INSERT_MESSAGES(session, [p.row for p in plans])
    for plan, message_id in zip(plans, inserted, strict=True):
        plan.row["id"] = message_id
    for plan in plans:
        if plan.rating is not None:
            ticket = await session.get_one(Ticket, plan.ticket.row["id"])
            await record_rating(session, ticket, plan.rating, None, now)

    owed = [
        outbox_values(
            kind=OutboxKind.NOTICE,
            template="ticket_received",
            channel=p.message.channel,
            contact_id=p.contact["id"],
            ticket_id=p.ticket.row["id"],
            message_id=p.row["id"],
            now=now,
        )
        for p in plans
        if _owes_notice(p)
    ]
    await write_outbox(session, owed)


def _owes_notice(plan: Planned) -> bool:
    """A new ticket tells its customer so (not an automatic mail's: no loops)."""
    return plan.new_ticket and not plan.message.auto_submitted


def _nothing_to_route(plan: Planned) -> bool:
    """The router would stay silent: people have the ticket, or the message holds nothing
    (no text, no file) for the knowledge base or for people, or it only thanks for an answer
    (on a ticket it did not open: a first message that only says "thanks" still reaches people).

    Decided here, under the ticket's lock, the router's own transaction is saved for most
    messages of a conversation an agent has taken over.
    """
    message = plan.message
    return (
        plan.ticket.row["escalated_at"] is not None
        or plan.rating is not None
        or message.auto_submitted
        or (not message.text.strip() and not message.attachments)
        or (not plan.new_ticket and acknowledges(message))
    )


def _meta(message: InboundMessage, rating: int | None) -> dict[str, Any]:
    """The message's stored metadata: the channel's own, plus what the router reads, and the
    score it gave when it was a survey's rating (an edit of the digit changes the score)."""
    meta = dict(message.channel_meta)
    if message.locale:
        meta.setdefault("locale", message.locale)
    if message.auto_submitted:
        meta["auto_submitted"] = True
    if rating is not None:
        meta["rating"] = rating
    return meta
