"""``UTCDateTime``: aware UTC in and out on both databases, SQLite's stored text unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import StatementError

from gateway.store import Store, on_postgres
from gateway.store.tables import Contact

CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
SHANGHAI = timezone(timedelta(hours=8))


async def _store_contact(store: Store, created_at: datetime) -> int:
    async with store.write() as session:
        result = await session.execute(
            insert(CONTACTS)
            .values(name="Li", vip=False, created_at=created_at)
            .returning(CONTACTS.c.id)
        )
        return int(result.scalar_one())


async def test_an_aware_datetime_comes_back_as_the_same_instant_in_utc(store: Store) -> None:
    given = datetime(2026, 11, 23, 9, 30, 5, 123, tzinfo=SHANGHAI)
    contact_id = await _store_contact(store, given)
    async with store.read() as session:
        found = await session.scalar(
            select(CONTACTS.c.created_at).where(CONTACTS.c.id == contact_id)
        )
        earlier = await session.scalar(
            select(CONTACTS.c.id).where(CONTACTS.c.created_at < given + timedelta(microseconds=1))
        )
    assert found == given
    assert found is not None and found.tzinfo is not None and found.utcoffset() == timedelta(0)
    assert earlier == contact_id  # a bound datetime compares in the stored form


async def test_a_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await _store_contact(store, datetime(2026, 11, 23, 9, 30))  # noqa: DTZ001 - the point


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sqlite_keeps_sqlalchemys_text_and_reads_sqlites_own(store: Store) -> None:
    """Databases written before (SQLAlchemy's format) and by SQLite itself read the same."""
    contact_id = await _store_contact(store, datetime(2026, 11, 23, 9, 30, 5, 7, tzinfo=SHANGHAI))
    async with store.write() as session:
        assert not on_postgres(session)
        stored = await session.scalar(
            text("SELECT created_at FROM contacts WHERE id = :id"), {"id": contact_id}
        )
        await session.execute(
            text("UPDATE contacts SET created_at = '2026-11-23 01:30:05' WHERE id = :id"),
            {"id": contact_id},
        )
    assert stored == "2026-11-23 01:30:05.000007"
    async with store.read() as session:
        rewritten = await session.scalar(
            select(CONTACTS.c.created_at).where(CONTACTS.c.id == contact_id)
        )
    assert rewritten == datetime(2026, 11, 23, 1, 30, 5, tzinfo=UTC)
