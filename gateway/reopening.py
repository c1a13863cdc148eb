"""A resolved or closed ticket reopened, by the system, on the customer's behalf.

Ingest reopens the ticket a customer writes to again (on its batch's rows, not through this);
a low survey score reopens it as a follow-up for the supervisor (``surveys.py``); "no, it did
not help" after a "yes" reopens it for people (``kb_feedback.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import record_event
from gateway.models import EventKind, TicketStatus
from gateway.store.tables import Ticket


def reopen(session: AsyncSession, ticket: Ticket, now: datetime, *, note: str) -> None:
    """Reopen ``ticket`` (status ``reopened``, no longer resolved or closed), with its event."""
    record_event(
        session, ticket, EventKind.REOPENED, ticket.status, TicketStatus.REOPENED, now, note=note
    )
    ticket.status = TicketStatus.REOPENED.value
    ticket.resolved_at = ticket.closed_at = None
    ticket.updated_at = now
