"""A resolved or closed ticket reopened, by the system, on the customer's behalf.

Ingest reopens the ticket a customer writes to again (on its batch's rows, not through this);
a low survey score reopens it as a follow-up for the supervisor (``surveys.py``); "no, it did
not help" after a "yes" reopens it for people (``kb_feedback.py``); a "thanks", which left the
ticket as it was, reopens it when the customer edits it into a request (:func:`take_up_edit`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import DONE_STATUSES, EventKind, TicketStatus
from gateway.store.tables import Ticket


def reopen(session: AsyncSession, ticket: Ticket, now: datetime, *, note: str) -> None:
    """Reopen ``ticket`` (status ``reopened``, no longer resolved or closed), with its event."""
    record_event(
        session, ticket, EventKind.REOPENED, ticket.status, TicketStatus.REOPENED, now, note=note
    )
    ticket.status = TicketStatus.REOPENED.value
    ticket.resolved_at = ticket.closed_at = None
    ticket.updated_at = now


class EditTakeUp(Enum):
    """What becomes of a "thanks" the customer edited into a request."""

    NOTHING = "nothing"
    """People have the ticket: they see the edit there."""
    ROUTE = "route"
    """Route the message again (its ticket open, or reopened for it)."""
    FOLLOW_UP = "follow_up"
    """Its ticket was done beyond the reopen window: the request is a new message, which
    opens a follow-up as any message after the window does."""


async def take_up_edit(
    session: AsyncSession, ticket_id: int, now: datetime, reopen_window: timedelta
) -> EditTakeUp:
    """Take up a message of ticket ``ticket_id``, a "thanks" the customer has edited into a
    request, as the request would have been taken up had it come then: the resolved or
    closed ticket the thanks was kept on reopens (within ``reopen_window`` of its closing),
    and the message is to be routed again unless people have the ticket. Stored as a
    thanks, it was routed nowhere, and the edit was seen by no one until the customer wrote
    again.
    """
    ticket = await session.get_one(Ticket, ticket_id, with_for_update=True)
    if TicketStatus(ticket.status) in DONE_STATUSES:
        done_at = ticket.closed_at or ticket.resolved_at or ticket.updated_at
        if now - done_at > reopen_window:
            return EditTakeUp.FOLLOW_UP
        reopen(session, ticket, now, note="a thanks edited into a request")
    return EditTakeUp.NOTHING if ticket.escalated_at is not None else EditTakeUp.ROUTE
