"""A resolved or closed ticket reopened, by the system, on the customer's behalf.

Ingest reopens the ticket a customer writes to again (on its batch's rows, not through this);
a low survey score reopens it as a follow-up for the supervisor (``surveys.py``); "no, it did
not help" after a "yes" reopens it for people (``kb_feedback.py``); a "thanks", which left the
ticket as it was, reopens it when the customer edits it into a request (:func:`take_up_edit`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import DONE_STATUSES, EventKind, TicketStatus
from gateway.store.tables import Ticket, TicketMessage


def reopen(session: AsyncSession, ticket: Ticket, now: datetime, *, note: str) -> None:
    """Reopen ``ticket`` (status ``reopened``, no longer resolved or closed), with its event."""
    record_event(
        session, ticket, EventKind.REOPENED, ticket.status, TicketStatus.REOPENED, now, note=note
    )
    ticket.status = TicketStatus.REOPENED.value
    ticket.resolved_at = ticket.closed_at = None
    ticket.updated_at = now


async def take_up_edit(session: AsyncSession, message_id: int, now: datetime) -> bool:
    """Take up the customer's message ``message_id``, a "thanks" they have edited into a
    request, as the request would have been taken up: the resolved or closed ticket the
    thanks was kept on reopens, and the message is to be routed again (True) unless people
    have the ticket. Stored as a thanks, it was routed nowhere, and the edit was seen by no
    one until the customer wrote again.
    """
    message = await session.get_one(TicketMessage, message_id)
    ticket = await session.get_one(Ticket, message.ticket_id, with_for_update=True)
    if TicketStatus(ticket.status) in DONE_STATUSES:
        reopen(session, ticket, now, note="a thanks edited into a request")
    if ticket.escalated_at is not None:
        return False
    message.routed_at = None
    return True
