"""Which ticket each message of an ingest batch goes to (``transaction.py`` writes them).

In order, as if the messages came one after the other: a reference to a ticket (a Reply, a
ticket number, an email's In-Reply-To), else the conversation's latest ticket, reopened within
the reopen window; past it, a follow-up linked to the old one; else a new ticket. What a
message does to its ticket (reopened, its SLA clock resumed, rated) is planned here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ingest.acknowledgements import acknowledges
from gateway.ingest.contacts import IdentityKey, identity_key
from gateway.ingest.lookups import ConversationKey, candidate_rows
from gateway.ingest.survey_replies import awaiting_rating, survey_score
from gateway.models import (
    DONE_STATUSES,
    EventKind,
    InboundMessage,
    NeedType,
    Priority,
    TicketStatus,
)
from gateway.sla import SlaPolicy

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TicketState:
    """A ticket as the batch leaves it: its row, and the events its changes owe."""

    row: dict[str, Any]
    new: bool = False
    touched: bool = False
    events: list[tuple[EventKind, str | None, str | None]] = field(default_factory=list)


@dataclass(slots=True)
class Planned:
    """Where one message goes: its contact and ticket, and what that does to the ticket."""

    message: InboundMessage
    contact: dict[str, Any]
    ticket: TicketState
    new_ticket: bool
    reopened: bool
    rating: int | None = None
    """The message answers the ticket's survey with this score (a reply of one digit)."""
    row: dict[str, Any] = field(default_factory=dict)


async def plan_tickets(
    session: AsyncSession,
    fresh: list[InboundMessage],
    contacts: dict[IdentityKey, dict[str, Any]],
    now: datetime,
    reopen_window: timedelta,
    sla: SlaPolicy,
) -> list[Planned]:
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
            Planned(message, contact, ticket, new_ticket, reopened, rating if answered else None)
        )
    return plans


def _open_elsewhere(
    latest: dict[ConversationKey, TicketState],
    conversation: ConversationKey | None,
    ticket: TicketState,
) -> TicketState | None:
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


def _open_follow_up(follow_ups: dict[int, TicketState], ticket: TicketState) -> TicketState | None:
    """The latest follow-up of ``ticket`` if it is open and its customer's."""
    current = follow_ups.get(ticket.row["id"])
    if current is None or current.row["status"] in DONE_STATUSES:
        return None
    return current if current.row["contact_id"] == ticket.row["contact_id"] else None


def _resume_clock(ticket: TicketState, now: datetime) -> None:
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
) -> tuple[dict[str, TicketState], dict[ConversationKey, TicketState], dict[int, TicketState]]:
    """Tickets named by reference, each conversation's latest ticket, and the latest open
    follow-up of each ticket named (by the named ticket's id)."""
    states: dict[int, TicketState] = {}
    refs = {m.ticket_ref for m in fresh if m.ticket_ref}
    conversations = {
        (contacts[identity_key(m)]["id"], m.channel.value, m.thread_key)
        for m in fresh
        if m.thread_key is not None
    }
    for found in await candidate_rows(session, refs, conversations):
        states.setdefault(found["id"], TicketState(found))
    by_number = {s.row["number"]: s for s in states.values()}
    follow_ups: dict[int, TicketState] = {}
    for state in states.values():
        parent = state.row["parent_id"]
        if parent is not None and state.row["status"] not in DONE_STATUSES:
            current = follow_ups.get(parent)
            if current is None or current.row["id"] < state.row["id"]:
                follow_ups[parent] = state
    latest: dict[ConversationKey, TicketState] = {}
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
    parent: TicketState | None = None,
) -> TicketState:
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
    state = TicketState(row, new=True)
    state.events.append((EventKind.CREATED, None, TicketStatus.NEW))
    if parent is not None:
        state.events.append((EventKind.LINKED, None, parent.row["number"]))
    return state
