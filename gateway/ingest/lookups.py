"""The reads of an ingest batch: messages already stored, and the tickets it may write to.

Each statement is built once, its values bound as expanding parameters (building an IN of a
hundred values per batch cost more than running it), and asks for one channel at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import InboundMessage
from gateway.store.tables import Ticket, TicketMessage

TICKETS: Table = Ticket.__table__  # type: ignore[assignment]
MESSAGES: Table = TicketMessage.__table__  # type: ignore[assignment]

T = TypeVar("T")

ConversationKey = tuple[int, str, str]
"""``(contact_id, channel, thread_key)``"""


async def stored_messages(
    session: AsyncSession, batch: Sequence[InboundMessage]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The batch's messages already stored, by ``(channel, external_id)``."""
    found = {}
    for channel, ids in by_channel((m.channel.value, m.external_id) for m in batch).items():
        result = await session.execute(_STORED_MESSAGES, {"channel": channel, "ids": ids})
        found.update({(r["channel"], r["external_id"]): dict(r) for r in result.mappings()})
    return found


def by_channel(keys: Iterable[tuple[str, T]]) -> dict[str, list[T]]:
    """``(channel, value)`` pairs as the values of each channel (deduplicated, in order).

    Lookups ask for one channel's values at a time: ``channel = :c AND value IN (...)`` is an
    index range on a ``(channel, value)`` index in both databases, where PostgreSQL planned
    an IN of row values as a scan of the channel's rows while the table's statistics lagged
    (21 ms for 100 keys among 5,000 messages, growing with the table).
    """
    grouped: dict[str, dict[T, None]] = {}
    for channel, value in keys:
        grouped.setdefault(channel, {})[value] = None
    return {channel: list(values) for channel, values in grouped.items()}


async def candidate_rows(
    session: AsyncSession, refs: set[str], conversations: set[ConversationKey]
) -> list[dict[str, Any]]:
    """Tickets numbered in ``refs`` and the latest ticket of each conversation, locked.

    A superset, per channel, of the conversations' latest tickets (every contact x thread of
    the channel): the caller keeps the ones it asked for.
    """
    queries: list[tuple[Select[Any], dict[str, Any]]] = []
    if refs:
        queries.append((_TICKETS_BY_NUMBER, {"refs": list(refs)}))
    channels: dict[str, tuple[dict[int, None], dict[str, None]]] = {}
    for contact_id, channel, thread_key in conversations:
        contact_ids, thread_keys = channels.setdefault(channel, ({}, {}))
        contact_ids[contact_id] = thread_keys[thread_key] = None
    for channel, (contact_ids, thread_keys) in channels.items():
        values = {"channel": channel, "contacts": list(contact_ids), "threads": list(thread_keys)}
        queries.append((_LATEST_TICKETS, values))
    rows: list[dict[str, Any]] = []
    for query, values in queries:
        rows.extend(dict(found) for found in (await session.execute(query, values)).mappings())
    return rows


_STORED_MESSAGES = select(MESSAGES).where(
    MESSAGES.c.channel == bindparam("channel"),
    MESSAGES.c.external_id.in_(bindparam("ids", expanding=True)),
)
"""One channel's messages stored under any of ``:ids``."""

# Locked until the batch commits: ingest writes these rows back (status, clocks), and an agent
# resolving one meanwhile must not be overwritten. In id order, as the router locks them
# (PostgreSQL; SQLite's single writer needs no row locks).
_TICKETS_BY_NUMBER = (
    select(TICKETS)
    .where(TICKETS.c.number.in_(bindparam("refs", expanding=True)))
    .order_by(TICKETS.c.id)
    .with_for_update()
)
_LATEST_TICKETS = (
    select(TICKETS)
    .where(
        TICKETS.c.id.in_(
            select(func.max(TICKETS.c.id))
            .where(
                TICKETS.c.contact_id.in_(bindparam("contacts", expanding=True)),
                TICKETS.c.channel == bindparam("channel"),
                TICKETS.c.thread_key.in_(bindparam("threads", expanding=True)),
            )
            .group_by(TICKETS.c.contact_id, TICKETS.c.channel, TICKETS.c.thread_key)
        )
    )
    .order_by(TICKETS.c.id)
    .with_for_update()
)
