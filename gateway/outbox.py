"""Writing what is owed to a customer: outbox rows, in the caller's transaction (invariant 3).

The relay in ``workers/relay.py`` moves due rows to RQ; the jobs in ``workers/`` deliver them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Channel, OutboxKind, OutboxStatus
from gateway.store.bulk import BulkInsert
from gateway.store.tables import OutboxRow, Ticket

TICKETS: Table = Ticket.__table__  # type: ignore[assignment]

QUEUE_BY_KIND: dict[OutboxKind, str] = {
    OutboxKind.REPLY: "replies",
    OutboxKind.NOTICE: "notices",
    OutboxKind.SURVEY: "surveys",
}
"""RQ queue per kind; workers listen in this order, so replies go before notices before surveys."""

QUEUES: tuple[str, ...] = tuple(QUEUE_BY_KIND.values())


def outbox_values(
    *,
    kind: OutboxKind,
    template: str,
    channel: Channel,
    contact_id: int,
    ticket_id: int | None,
    now: datetime,
    message_id: int | None = None,
    payload: dict[str, Any] | None = None,
    due_at: datetime | None = None,
) -> dict[str, Any]:
    """The column values of one pending outbox row."""
    return {
        "kind": kind.value,
        "template": template,
        "channel": channel.value,
        "contact_id": contact_id,
        "ticket_id": ticket_id,
        "message_id": message_id,
        "payload": payload or {},
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "due_at": due_at or now,
        "created_at": now,
    }


_DEFERRED = "deferred_outbox"
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
_INSERT_OUTBOX = BulkInsert(OUTBOX)


def add_outbox(session: AsyncSession, **values: Any) -> OutboxRow:
    """Add one outbox row to the session (see :func:`outbox_values` for the arguments)."""
    row = OutboxRow(**outbox_values(**values))
    session.add(row)
    return row


def queue_outbox(session: AsyncSession, **values: Any) -> None:
    """Owe an outbox row: kept as values inside :func:`defer_outbox`, else as :func:`add_outbox`.

    For callers that do not need the row object (the router's and dispatch's notices).
    """
    deferred: list[dict[str, Any]] | None = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.append(outbox_values(**values))
    else:
        add_outbox(session, **values)


def defer_outbox(session: AsyncSession) -> None:
    """Collect :func:`queue_outbox` rows until :func:`write_deferred_outbox` inserts them.

    The caller must write them before it commits (invariant 3), or they are lost.
    """
    session.info.setdefault(_DEFERRED, [])


async def write_deferred_outbox(session: AsyncSession) -> None:
    """Insert the collected outbox rows in one statement; collecting stops."""
    await write_outbox(session, session.info.pop(_DEFERRED, []))


async def write_outbox(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert outbox rows built by :func:`outbox_values`, in the caller's transaction."""
    if rows:
        # The table, not the entity: skips the ORM's bulk-insert bookkeeping.
        await _INSERT_OUTBOX(session, rows)


def reply_values(
    ticket: Ticket, message_id: int, now: datetime, *, payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The :func:`outbox_values` arguments owing the stored message ``message_id``."""
    return {
        "payload": payload,
        "kind": OutboxKind.REPLY,
        "template": "message",
        "channel": Channel(ticket.channel),
        "contact_id": ticket.contact_id,
        "ticket_id": ticket.id,
        "message_id": message_id,
        "now": now,
    }


def owe_reply(
    session: AsyncSession,
    ticket: Ticket,
    message_id: int,
    now: datetime,
    *,
    payload: dict[str, Any] | None = None,
) -> OutboxRow:
    """Owe the customer the stored message ``message_id``, on the ticket's channel."""
    return add_outbox(session, **reply_values(ticket, message_id, now, payload=payload))


def agents_words(kind: str, template: str) -> bool:
    """Whether an outbox row carries an agent's words to the customer: a reply, or a progress
    update (a notice of template ``progress``). Other notices' ``message_id`` names the
    customer's message that caused them."""
    return kind == OutboxKind.REPLY.value or (
        kind == OutboxKind.NOTICE.value and template == "progress"
    )


async def show_outcome(session: AsyncSession, ticket_ids: set[int], now: datetime) -> None:
    """Move the tickets' ``updated_at``: an agent's words there failed for good, or are due
    again. The console reloads an open ticket (and the live queue sends it) when that moves,
    so the agent sees the outcome without reloading (``gateway/console/live.py``)."""
    if ticket_ids:
        await session.execute(
            update(TICKETS).where(TICKETS.c.id.in_(ticket_ids)).values(updated_at=now)
        )
