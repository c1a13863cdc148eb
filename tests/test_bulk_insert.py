"""``BulkInsert`` stores what SQLAlchemy's own INSERT would, and returns ids in row order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import DBAPIError

from gateway.events import EVENTS
from gateway.ingest.contacts import CONTACTS
from gateway.outbox import OUTBOX
from gateway.store import Store
from gateway.store.bulk import BulkInsert
from gateway.store.tables import Ticket, TicketMessage
from tests.factories import inbound, make_ingest

MESSAGES: Table = TicketMessage.__table__  # type: ignore[assignment]
TICKETS: Table = Ticket.__table__  # type: ignore[assignment]
WHEN = datetime(2026, 11, 23, 1, 30, 5, 7, tzinfo=UTC)


async def _a_ticket(store: Store) -> int:
    result = await make_ingest(store)(inbound(external_user_id="bulk", thread_key="bulk"))
    return result.ticket_id


def _message(ticket_id: int, i: int) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "kind": "incoming",
        "author_type": "customer",
        "author_id": None,
        "channel": "telegram",
        "external_id": f"bulk-{i}",
        "text": f"第 {i} 条 \"quoted\" 'text' ?, $1",
        "attachments": [{"name": f"a{i}.png", "size": i}] if i % 2 else [],
        "channel_meta": {"locale": "zh", "n": i, "nested": {"ok": True}},
        "created_at": WHEN + timedelta(microseconds=i),
        "routed_at": None if i % 3 else WHEN,
    }


def _event(ticket_id: int, i: int) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "kind": "status",
        "old_value": str(i),
        "new_value": str(i + 1),
        "actor_type": "system",
        "actor_id": None,
        "note": None,
        "created_at": WHEN,
    }


async def _stored(store: Store, table: Table, ids: list[int]) -> list[dict[str, Any]]:
    async with store.read() as session:
        rows = (await session.execute(select(table).where(table.c.id.in_(ids)))).mappings()
        by_id = {row["id"]: dict(row) for row in rows}
    return [by_id[i] for i in ids]


async def test_rows_are_stored_as_sqlalchemy_stores_them_and_ids_come_in_row_order(
    store: Store,
) -> None:
    ticket_id = await _a_ticket(store)
    ours = [_message(ticket_id, i) for i in range(1, 8)]
    theirs = [{**row, "external_id": "sa-" + row["external_id"]} for row in ours]
    async with store.write() as session:
        ids = await BulkInsert(MESSAGES, returning=MESSAGES.c.id)(session, ours)
        sqlalchemy = insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True)
        their_ids = list((await session.execute(sqlalchemy, theirs)).scalars())

    assert [row["external_id"] for row in await _stored(store, MESSAGES, ids)] == [
        row["external_id"] for row in ours
    ]
    for mine, sqlalchemys in zip(
        await _stored(store, MESSAGES, ids), await _stored(store, MESSAGES, their_ids), strict=True
    ):
        assert mine.keys() == sqlalchemys.keys()
        for column in mine:
            if column not in {"id", "external_id"}:
                assert mine[column] == sqlalchemys[column], column
    assert (await _stored(store, MESSAGES, ids))[0]["created_at"] == WHEN + timedelta(
        microseconds=1
    )


async def test_rows_without_a_defaulted_column_get_its_default(store: Store) -> None:
    ticket_id = await _a_ticket(store)
    async with store.read() as session:
        contact_id = await session.scalar(select(TICKETS.c.contact_id))
    row = {
        "kind": "notice",
        "template": "escalated",
        "channel": "telegram",
        "ticket_id": ticket_id,
        "message_id": None,
        "contact_id": contact_id,
        "status": "pending",
        "due_at": WHEN,
        "created_at": WHEN,
    }  # no "payload", no "attempts": the model's defaults fill them
    async with store.write() as session:
        await BulkInsert(OUTBOX)(session, [row])
    async with store.read() as session:
        stored = (
            await session.execute(
                select(OUTBOX.c.payload, OUTBOX.c.attempts).where(OUTBOX.c.template == "escalated")
            )
        ).one()
    assert stored.payload == {}
    assert stored.attempts == 0


async def test_more_rows_than_one_statement_binds_are_split_in_order(store: Store) -> None:
    ticket_id = await _a_ticket(store)
    # 8 columns: 4,095 rows a statement, so 5,000 rows take two.
    rows = [_event(ticket_id, i) for i in range(5000)]
    async with store.write() as session:
        ids = await BulkInsert(EVENTS, returning=EVENTS.c.id)(session, rows)
    assert len(ids) == 5000
    assert ids == sorted(ids)
    stored = await _stored(store, EVENTS, ids)
    assert [row["old_value"] for row in stored] == [str(i) for i in range(5000)]


async def test_no_rows_no_statement(store: Store) -> None:
    async with store.write() as session:
        assert await BulkInsert(CONTACTS, returning=CONTACTS.c.id)(session, []) == []


def test_only_the_autoincrement_key_can_be_returned() -> None:
    with pytest.raises(ValueError, match="autoincrement"):
        BulkInsert(TICKETS, returning=TICKETS.c.number)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_on_postgresql_one_prepared_statement_serves_every_batch_size(store: Store) -> None:
    ticket_id = await _a_ticket(store)
    async with store.write() as session:
        for size in (1, 3, 40, 7):
            await BulkInsert(EVENTS)(session, [_event(ticket_id, i) for i in range(size)])
        prepared = await session.scalar(
            text(
                "SELECT count(*) FROM pg_prepared_statements"
                " WHERE statement LIKE 'INSERT INTO ticket_events%'"
            )
        )
    assert prepared == 1


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_on_postgresql_a_value_too_long_for_its_column_is_refused_not_cut(
    store: Store,
) -> None:
    ticket_id = await _a_ticket(store)
    too_long = {**_message(ticket_id, 1), "channel": "x" * 21}  # VARCHAR(20)
    with pytest.raises(DBAPIError, match="too long"):
        async with store.write() as session:
            await BulkInsert(MESSAGES, returning=MESSAGES.c.id)(session, [too_long])
