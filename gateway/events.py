"""The ticket audit trail: every status, priority, category and assignment change, who and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import AuthorType, EventKind
from gateway.store.tables import Ticket, TicketEvent


def record_event(
    session: AsyncSession,
    ticket: Ticket,
    kind: EventKind,
    old: str | None,
    new: str | None,
    now: datetime,
    *,
    actor_type: AuthorType = AuthorType.SYSTEM,
    actor_id: int | None = None,
    note: str | None = None,
) -> None:
    """Add one event to the session, in the transaction that makes the change."""
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind=kind.value,
            old_value=old,
            new_value=new,
            actor_type=actor_type.value,
            actor_id=actor_id,
            note=note,
            created_at=now,
        )
    )
