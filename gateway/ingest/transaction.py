"""One batch of inbound messages, stored in one transaction with set-based statements.

The batch behaves exactly as if its messages had been ingested one after the other, in order:
a message repeated inside the batch is a replay of its first copy, the second message of a new
conversation threads onto the ticket the first one opened, and so on. What changes is the cost:
about a dozen statements per batch instead of a dozen per message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import write_events
from gateway.ingest.acknowledgements import acknowledges
from gateway.ingest.contacts import IdentityKey, identity_key, resolve_contacts
from gateway.ingest.lookups import ConversationKey, candidate_rows, stored_messages
from gateway.ingest.result import IngestResult
from gateway.ingest.survey_replies import awaiting_rating, survey_score
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


@dataclass(slots=True)
class _TicketState:
    row: dict[str, Any]
    new: bool = False
    touched: bool = False
    events: list[tuple[EventKind, str | None, str | None]] = field(default_factory=list)


@dataclass(slots=True)
class _Planned:
    message: InboundMessage
    contact: dict[str, Any]
    ticket: _TicketState
    new_ticket: bool
    reopened: bool
    rating: int | None = None
    """The message answers the ticket's survey with this score (a reply of one digit)."""
    row: dict[str, Any] = field(default_factory=dict)


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

    planned: dict[tuple[str, str], _Planned] = {}
    if fresh:
        contacts = await resolve_contacts(session, fresh, now)
        plans = await _plan_tickets(session, fresh, contacts, now, reopen_window, sla)
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


async def _plan_tickets(
    session: AsyncSession,
    fresh: list[InboundMessage],
    contacts: dict[IdentityKey, dict[str, Any]],
    now: datetime,
    reopen_window: timedelta,
    sla: SlaPolicy,
) -> list[_Planned]:
    """Decide, message by message in order, which ticket each one goes to."""
    by_number, latest, follow_ups = await _candidate_tickets(session, fresh, contacts)
    surveyed = await awaiting_rating(session, (t.row for t in by_number.values()), fresh, now)
    plans = []
    for message in fresh:
        contact = contacts[identity_key(message)]
        conversation = (
            (contact["id"], message.channel.value, message.thread_key)
            if message.thread_key is not None
            else None
        )
        ticket = None
        if message.ticket_ref:
            ticket = by_number.get(message.ticket_ref)
            if ticket is not None and ticket.row["contact_id"] != contact["id"]:
                log.info(
                    "ticket reference ignored: not the sender's", extra={"ref": message.ticket_ref}
                )
                ticket = None
        if ticket is None and conversation is not None:
            ticket = latest.get(conversation)
        new_ticket = reopened = False
        rating = survey_score(message.text)
        if ticket is None:
            ticket, new_ticket = _new_ticket(message, contact, now, sla), True
        elif rating is not None and ticket.row["id"] in surveyed:
            # "3" in reply to the survey of a closed ticket: a rating, not a new question, so
            # the ticket is not reopened (a low score reopens it for the supervisor instead).
            surveyed.discard(ticket.row["id"])
        elif ticket.row["status"] in DONE_STATUSES:
            row = ticket.row
            done_at = row["closed_at"] or row["resolved_at"] or row["updated_at"]
            if _no_one_wrote(message):
                # An out-of-office answer to our "resolved" notice: kept on the ticket, which
                # stays done (RFC 3834: no person wrote it; nobody is to act on it).
                pass
            elif now - done_at <= reopen_window and acknowledges(message):
                pass  # "Thanks!" after the resolution: kept on the ticket, which stays done
            elif now - done_at <= reopen_window:
                ticket.events.append((EventKind.REOPENED, row["status"], TicketStatus.REOPENED))
                row.update(status=TicketStatus.REOPENED.value, resolved_at=None, closed_at=None)
                reopened = True
            elif (current := _open_elsewhere(latest, conversation, ticket)) is not None:
                # A reference to a ticket closed long ago (a Telegram "Reply" to its message)
                # from a conversation with another ticket open goes there: a follow-up of the
                # old one became the conversation's latest, and the open ticket heard no more.
                ticket = current
            elif (
                conversation is None
                and (current := _open_follow_up(follow_ups, ticket)) is not None
            ):
                # Email has no conversation to catch it: the customer's second mail naming
                # the old ticket ("and the lid is cracked too") joins the follow-up the first
                # one opened, rather than opening one more. A message of a conversation was
                # placed above: its conversation has no ticket open (a Telegram /new).
                ticket = current
            else:
                parent = ticket
                ticket, new_ticket = _new_ticket(message, contact, now, sla, parent=parent), True
                follow_ups[parent.row["id"]] = ticket
        if ticket.row["status"] == TicketStatus.WAITING_CUSTOMER and not _no_one_wrote(message):
            # The customer answered: the paused SLA clock runs again, the agent's turn. Their
            # out-of-office mail is no answer: it is kept, and the turn stays theirs.
            _resume_clock(ticket, now)
        if conversation is not None and new_ticket:
            # Only a new ticket becomes the conversation's latest, as it would in the store: a
            # referenced one (an older ticket, or one of another thread) stays where it is.
            latest[conversation] = ticket
        if not ticket.new:
            ticket.touched = True
            ticket.row["updated_at"] = now
        answered = rating is not None and not new_ticket and not reopened
        answered = answered and ticket.row["status"] in DONE_STATUSES
        plans.append(
            _Planned(message, contact, ticket, new_ticket, reopened, rating if answered else None)
        )
    return plans


def _open_elsewhere(
    latest: dict[ConversationKey, _TicketState],
    conversation: ConversationKey | None,
    ticket: _TicketState,
) -> _TicketState | None:
    """The conversation's latest ticket if it is open and not ``ticket``."""
    current = latest.get(conversation) if conversation is not None else None
    if current is None or current is ticket or current.row["status"] in DONE_STATUSES:
        return None
    return current


_RELAYED = frozenset({"list", "precedence:list"})
"""Why a person's mail can look automatic: a list relayed it (a support address that is a
Google Group or a Mailman list adds List-Id and ``Precedence: list`` to every mail)."""


def _no_one_wrote(message: InboundMessage) -> bool:
    """An automatic message (RFC 3834: an out-of-office, a read receipt) that nobody is to act
    on; not a person's mail that only came through a list, which gets no automatic answer
    either but is an answer."""
    if not message.auto_submitted:
        return False
    reasons = message.channel_meta.get("auto_reasons")
    if not isinstance(reasons, list | tuple) or not reasons:
        return True
    return any(reason not in _RELAYED for reason in reasons)


def _open_follow_up(
    follow_ups: dict[int, _TicketState], ticket: _TicketState
) -> _TicketState | None:
    """The latest follow-up of ``ticket`` if it is open and its customer's."""
    current = follow_ups.get(ticket.row["id"])
    if current is None or current.row["status"] in DONE_STATUSES:
        return None
    return current if current.row["contact_id"] == ticket.row["contact_id"] else None


def _resume_clock(ticket: _TicketState, now: datetime) -> None:
    row = ticket.row
    ticket.events.append((EventKind.STATUS, row["status"], TicketStatus.IN_PROGRESS))
    row["status"] = TicketStatus.IN_PROGRESS.value
    if row["waiting_since"] is not None:
        paused = now - row["waiting_since"]
        if row["resolution_due_at"] is not None:
            row["resolution_due_at"] += paused
        row["waiting_since"] = None


async def _candidate_tickets(
    session: AsyncSession,
    fresh: list[InboundMessage],
    contacts: dict[IdentityKey, dict[str, Any]],
) -> tuple[dict[str, _TicketState], dict[ConversationKey, _TicketState], dict[int, _TicketState]]:
    """Tickets named by reference, each conversation's latest ticket, and the latest open
    follow-up of each ticket named (by the named ticket's id)."""
    states: dict[int, _TicketState] = {}
    refs = {m.ticket_ref for m in fresh if m.ticket_ref}
    conversations = {
        (contacts[identity_key(m)]["id"], m.channel.value, m.thread_key)
        for m in fresh
        if m.thread_key is not None
    }
    for found in await candidate_rows(session, refs, conversations):
        states.setdefault(found["id"], _TicketState(found))
    by_number = {s.row["number"]: s for s in states.values()}
    follow_ups: dict[int, _TicketState] = {}
    for state in states.values():
        parent = state.row["parent_id"]
        if parent is not None and state.row["status"] not in DONE_STATUSES:
            current = follow_ups.get(parent)
            if current is None or current.row["id"] < state.row["id"]:
                follow_ups[parent] = state
    latest: dict[ConversationKey, _TicketState] = {}
    for state in states.values():
        row = state.row
        conversation = (row["contact_id"], row["channel"], row["thread_key"])
        if conversation in conversations:
            current = latest.get(conversation)
            if current is None or current.row["id"] < row["id"]:
                latest[conversation] = state
    return by_number, latest, follow_ups


def _new_ticket(
    message: InboundMessage,
    contact: dict[str, Any],
    now: datetime,
    sla: SlaPolicy,
    *,
    parent: _TicketState | None = None,
) -> _TicketState:
    row: dict[str, Any] = {
        "id": None,
        "number": None,
        "contact_id": contact["id"],
        "channel": message.channel.value,
        "thread_key": message.thread_key,
        "subject": message.subject,
        "status": TicketStatus.NEW.value,
        "priority": Priority.NORMAL.value,
        "need_type": NeedType.INQUIRY.value,
        "category_id": None,
        "team_id": None,
        "assignee_id": None,
        "parent_id": parent.row["id"] if parent else None,
        "escalated_at": None,
        "resolved_by_bot": False,
        "created_at": now,
        "updated_at": now,
        "first_response_at": None,
        "resolved_at": None,
        "closed_at": None,
        "first_response_due_at": sla.first_response_due(Priority.NORMAL, now),
        "resolution_due_at": sla.resolution_due(Priority.NORMAL, now),
        "waiting_since": None,
        "last_update_at": None,
        "sla_warned_at": None,
        "overdue_at": None,
    }
    state = _TicketState(row, new=True)
    state.events.append((EventKind.CREATED, None, TicketStatus.NEW))
    if parent is not None:
        state.events.append((EventKind.LINKED, None, parent.row["number"]))
    return state


async def _write(
    session: AsyncSession, plans: list[_Planned], now: datetime, zone: ZoneInfo
) -> None:
    """Insert the new tickets, messages, events and outbox rows; update the touched tickets."""
    tickets: dict[int, _TicketState] = {}
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


def _owes_notice(plan: _Planned) -> bool:
    """A new ticket tells its customer so (not an automatic mail's: no loops)."""
    return plan.new_ticket and not plan.message.auto_submitted


def _nothing_to_route(plan: _Planned) -> bool:
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
