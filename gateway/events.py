"""The ticket audit trail: every status, priority, category and assignment change, who and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import AuthorType, EventKind
from gateway.store.bulk import BulkInsert
from gateway.store.tables import Ticket, TicketEvent

_DEFERRED = "deferred_events"
EVENTS: Table = TicketEvent.__table__  # type: ignore[assignment]
_INSERT_EVENTS = BulkInsert(EVENTS)


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
    """Add one event to the session, in the transaction that makes the change.

    Inside :func:`defer_events` the event is kept as column values and inserted with the
    batch's others by :func:`write_deferred_events` (an ORM object each costs more CPU than
    the router's whole decision).
    """
    values = {
        "ticket_id": ticket.id,
        "kind": kind.value,
        "old_value": old,
        "new_value": new,
        "actor_type": actor_type.value,
        "actor_id": actor_id,
        "note": note,
        "created_at": now,
    }
    deferred: list[dict[str, Any]] | None = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.append(values)
    else:
        session.add(TicketEvent(**values))


def defer_events(session: AsyncSession) -> None:
    """Collect this session's events until :func:`write_deferred_events` inserts them.

    The caller must write them before it commits, or they are lost.
    """
    session.info.setdefault(_DEFERRED, [])


async def write_deferred_events(session: AsyncSession) -> None:
    """Insert the collected events in one statement, in call order; collecting stops."""
    await write_events(session, session.info.pop(_DEFERRED, []))


async def write_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert event rows (column values) in the caller's transaction, one statement."""
    if rows:  # the table, not the entity: the ORM's bulk insert costs more than it saves
        await _INSERT_EVENTS(session, rows)
