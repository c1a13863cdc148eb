"""The reads of an ingest batch: messages already stored, and the tickets it may write to.

Each statement is built once and asks for one channel at a time, its values bound as
parameters (building an IN of a hundred values per batch cost more than running it): on
SQLite an expanding IN list, on PostgreSQL arrays probed key by key (:func:`probe_each`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from gateway.models import DONE_STATUSES, InboundMessage
from gateway.store import on_postgres
from gateway.store.tables import Ticket, TicketMessage

TICKETS: Table = Ticket.__table__  # type: ignore[assignment]
MESSAGES: Table = TicketMessage.__table__  # type: ignore[assignment]

T = TypeVar("T")

ConversationKey = tuple[int, str, str]
"""``(contact_id, channel, thread_key)``"""


async def stored_messages(
    session: AsyncSession, batch: Sequence[InboundMessage], *, locks: Sequence[int] = ()
) -> dict[tuple[str, str], dict[str, Any]]:
    """The batch's messages already stored, by ``(channel, external_id)``.

    On PostgreSQL, ``locks`` (advisory-lock keys, sorted) are taken by the first of these
    reads, in the same round trip, before it looks (see :data:`_STORED_MESSAGES_PG_LOCKING`).
    """
    found = {}
    postgres = on_postgres(session)
    for channel, ids in by_channel((m.channel.value, m.external_id) for m in batch).items():
        values: dict[str, Any] = {"channel": channel, "ids": ids}
        if not postgres:
            query = _STORED_MESSAGES
        elif locks:
            query, values["locks"], locks = _STORED_MESSAGES_PG_LOCKING, list(locks), ()
        else:
            query = _STORED_MESSAGES_PG
        result = await session.execute(query, values)
        found.update({(r["channel"], r["external_id"]): dict(r) for r in result.mappings()})
    return found


def by_channel(keys: Iterable[tuple[str, T]]) -> dict[str, list[T]]:
    """``(channel, value)`` pairs as the values of each channel (deduplicated, in order).

    Lookups ask for one channel's values at a time: an IN of row values was planned as a scan
    of the channel's rows, and so was ``channel = :c AND value IN (...)`` on PostgreSQL while
    the table's statistics lagged (see :func:`keys_of`).
    """
    grouped: dict[str, dict[T, None]] = {}
    for channel, value in keys:
        grouped.setdefault(channel, {})[value] = None
    return {channel: list(values) for channel, values in grouped.items()}


async def candidate_rows(
    session: AsyncSession, refs: set[str], conversations: set[ConversationKey]
) -> list[dict[str, Any]]:
    """Tickets numbered in ``refs``, their open follow-ups, and the latest ticket of each
    conversation, locked.

    On SQLite a superset, per channel, of the conversations' latest tickets (every contact x
    thread of the channel): the caller keeps the ones it asked for.
    """
    rows: list[dict[str, Any]] = []
    if refs:
        named = await session.execute(_TICKETS_BY_NUMBER, {"refs": list(refs)})
        rows.extend(dict(found) for found in named.mappings())
        # Only a done ticket can have a follow-up to join: most mail answers an open one,
        # and its batch reads no more.
        done = sorted({row["number"] for row in rows if row["status"] in _DONE})
        if done:
            follow_ups = await session.execute(_OPEN_FOLLOW_UPS, {"refs": done, "done": _DONE})
            rows.extend(dict(found) for found in follow_ups.mappings())
    pairs: dict[str, list[tuple[int, str]]] = {}
    for contact_id, channel, thread_key in conversations:
        pairs.setdefault(channel, []).append((contact_id, thread_key))
    postgres = on_postgres(session)
    for channel, keys in pairs.items():
        contacts = [contact_id for contact_id, _ in keys]
        threads = [thread_key for _, thread_key in keys]
        if postgres:
            query = _LATEST_TICKETS_PG  # the pairs, in step
        else:
            query = _LATEST_TICKETS  # two IN lists, each deduplicated
            contacts, threads = list(dict.fromkeys(contacts)), list(dict.fromkeys(threads))
        values = {"channel": channel, "contacts": contacts, "threads": threads}
        rows.extend(dict(found) for found in (await session.execute(query, values)).mappings())
    return rows


def keys_of(name: str, *columns: tuple[str, TypeEngine[Any]]) -> TableValuedAlias:
    """``unnest(:a, :b, ...) AS name(a, b, ...)``: a PostgreSQL lookup's keys as rows.

    Each column is bound as an array parameter of its own name. The statement's text does not
    depend on the number of keys, so asyncpg prepares it once per connection instead of once
    per batch size.
    """
    arrays = [bindparam(column, type_=ARRAY(type_)) for column, type_ in columns]
    return func.unnest(*arrays).table_valued(*(c for c, _ in columns)).render_derived(name=name)


def probe_each(keys: TableValuedAlias, probe: Select[Any], name: str) -> Select[Any]:
    """``probe`` (a query on one key: ``LIMIT 1``) run once per row of ``keys`` (PostgreSQL).

    Without fresh statistics (a new or bulk-loaded table, autovacuum behind or off)
    PostgreSQL guesses that ``channel = :c`` matches 0.5% of a table, so for ``channel = :c
    AND value IN (...)``, or the same keys joined, it reads the channel's whole range of the
    ``(channel, value)`` index and filters or hashes the values: every row of the channel,
    for each batch, growing with the table (1.5 ms per batch at 4,500 messages). A lateral
    probe cannot be planned that way: each key is an equality on the whole index, one row at
    most, whatever the table's size (0.7 ms for 100 keys).
    """
    lateral = probe.limit(literal_column("1")).lateral(name)  # a constant: planned as one row
    return select(lateral).select_from(keys).join(lateral, true())


_STORED_MESSAGES = select(MESSAGES).where(
    MESSAGES.c.channel == bindparam("channel"),
    MESSAGES.c.external_id.in_(bindparam("ids", expanding=True)),
)
"""One channel's messages stored under any of ``:ids``."""
_MESSAGE_IDS = keys_of("k", ("ids", String()))
_STORED_MESSAGES_PG = probe_each(
    _MESSAGE_IDS,
    select(MESSAGES).where(
        MESSAGES.c.channel == bindparam("channel"), MESSAGES.c.external_id == _MESSAGE_IDS.c.ids
    ),
    "m",
)

_LOCK_KEYS = keys_of("l", ("locks", BigInteger()))
_STORED_MESSAGES_PG_LOCKING = _STORED_MESSAGES_PG.where(
    select(func.count(func.pg_advisory_xact_lock(_LOCK_KEYS.c.locks)))
    .select_from(_LOCK_KEYS)
    .scalar_subquery()
    >= 0
)
"""The same, taking the advisory locks ``:locks`` first: a condition on no row is planned as
a one-time filter, evaluated before the scan, whether or not any message is found. The
statement reads from the snapshot it started with, before it waited for a lock, so a message
another batch committed meanwhile may be missed here; inserting it again then violates the
unique ``(channel, external_id)`` and the batch is retried, and finds it. The reads after this
one each take a fresh snapshot, with the locks held (READ COMMITTED)."""

# Locked until the batch commits: ingest writes these rows back (status, clocks), and an agent
# resolving one meanwhile must not be overwritten. In id order, as the router locks them
# (PostgreSQL; SQLite's single writer needs no row locks).
_TICKETS_BY_NUMBER = (
    select(TICKETS)
    .where(TICKETS.c.number.in_(bindparam("refs", expanding=True)))
    .order_by(TICKETS.c.id)
    .with_for_update()
)
_PARENTS = TICKETS.alias("parent")
_FOLLOW_UP = TICKETS.alias("follow_up")
_DONE = sorted(status.value for status in DONE_STATUSES)
_OPEN_FOLLOW_UPS = (
    select(_FOLLOW_UP)
    .join(_PARENTS, _PARENTS.c.id == _FOLLOW_UP.c.parent_id)
    .where(
        _PARENTS.c.number.in_(bindparam("refs", expanding=True)),
        # The parent's contact: ix_tickets_conversation narrows to that customer's tickets.
        _FOLLOW_UP.c.contact_id == _PARENTS.c.contact_id,
        _FOLLOW_UP.c.status.not_in(bindparam("done", expanding=True)),
    )
    .order_by(_FOLLOW_UP.c.id)
    .with_for_update(of=_FOLLOW_UP)
)
"""The open follow-ups of the tickets numbered in ``:refs``: where a message naming a ticket
closed beyond the reopen window goes when one is already open for it."""
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
_CONVERSATIONS = keys_of("k", ("contacts", Integer()), ("threads", String()))
_LATEST_TICKETS_PG = (
    select(TICKETS)
    .where(
        TICKETS.c.id.in_(
            probe_each(
                _CONVERSATIONS,
                select(TICKETS.c.id)
                .where(
                    TICKETS.c.contact_id == _CONVERSATIONS.c.contacts,
                    TICKETS.c.channel == bindparam("channel"),
                    TICKETS.c.thread_key == _CONVERSATIONS.c.threads,
                )
                .order_by(TICKETS.c.id.desc()),
                "latest",
            )
        )
    )
    .order_by(TICKETS.c.id)
    .with_for_update()
)
"""The same on PostgreSQL: exactly the conversations asked for, the latest ticket of each read
backwards from ``ix_tickets_conversation`` (see :func:`probe_each`)."""
