"""SQLite statements run in one call on aiosqlite's thread, and still say what SQLAlchemy reads."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy import CursorResult, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from gateway.store import Store
from gateway.store.sqlite_cursor import OneTripConnection
from gateway.store.tables import Team

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

teams: Table = Team.__table__  # type: ignore[assignment]


async def _driver_calls(store: Store) -> list[str]:
    """Count the calls the write connection's aiosqlite thread is handed from now on."""
    calls: list[str] = []
    async with store.write() as session:
        adapted = (await (await session.connection()).get_raw_connection()).dbapi_connection
        assert isinstance(adapted, OneTripConnection)
        driver = adapted.driver_connection
        original = driver._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(getattr(fn, "__name__", repr(fn)))
            return await original(fn, *args, **kwargs)

        driver._execute = counted
    return calls


async def test_a_statement_is_one_call_on_the_driver_thread(store: Store) -> None:
    calls = await _driver_calls(store)
    async with store.write() as session:
        await session.connection()  # BEGIN IMMEDIATE: a statement of its own
        calls.clear()
        assert (await session.execute(text("SELECT 1, 2"))).all() == [(1, 2)]
        assert calls == ["_run"]  # SQLAlchemy's adapter: cursor, execute, fetchall, close


async def test_rows_rowcount_and_inserted_keys_reach_sqlalchemy(store: Store) -> None:
    async with store.write() as session:
        first = cast(CursorResult[Any], await session.execute(insert(teams).values(name="billing")))
        assert first.inserted_primary_key is not None  # from lastrowid: no RETURNING here
        first_id = first.inserted_primary_key[0]
        many = cast(
            CursorResult[Any],
            await session.execute(insert(teams), [{"name": "returns"}, {"name": "vip"}]),
        )
        assert many.rowcount == 2
        returned = await session.execute(
            insert(teams).returning(teams.c.id, teams.c.name), [{"name": "a"}, {"name": "b"}]
        )
        assert [name for _, name in returned.all()] == ["a", "b"]
        renamed = cast(
            CursorResult[Any],
            await session.execute(
                update(teams).where(teams.c.name.in_(["a", "b"])).values(name=teams.c.name + "!")
            ),
        )
        assert renamed.rowcount == 2
    async with store.read() as session:
        result = await session.execute(select(teams.c.id, teams.c.name).order_by(teams.c.id))
        assert list(result.keys()) == ["id", "name"]
        rows = result.all()
    assert rows[0] == (first_id, "billing")
    assert [name for _, name in rows] == ["billing", "returns", "vip", "a!", "b!"]


async def test_a_failed_statement_raises_sqlalchemys_error_and_keeps_what_was_stored(
    store: Store,
) -> None:
    async with store.write() as session:
        await session.execute(insert(teams).values(name="billing"))
    async with store.write() as session:
        await session.execute(insert(teams).values(name="sales"))
        with pytest.raises(IntegrityError):
            await session.execute(insert(teams).values(name="billing"))  # unique name
        await session.rollback()
    async with store.write() as session:  # the connection is still usable
        await session.execute(insert(teams).values(name="support"))
    async with store.read() as session:
        names = (await session.scalars(select(teams.c.name).order_by(teams.c.id))).all()
    assert names == ["billing", "support"]


async def test_streamed_results_keep_the_server_side_cursor(store: Store) -> None:
    async with store.write() as session:
        await session.execute(insert(teams), [{"name": f"team {i}"} for i in range(5)])
    async with store.read() as session:
        stream = await session.stream(select(teams.c.name).order_by(teams.c.id))
        names = [name async for (name,) in stream]
    assert names == [f"team {i}" for i in range(5)]
