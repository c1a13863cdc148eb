"""SQLite statements run in one call on aiosqlite's thread (reads), or on the event loop's
(the writer's, inside its transaction), and still say what SQLAlchemy reads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any, cast

import pytest
from sqlalchemy import CursorResult, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import Store
from gateway.store.sqlite_cursor import InlineConnection, OneTripConnection
from gateway.store.tables import Team

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

teams: Table = Team.__table__  # type: ignore[assignment]


async def _count_driver_calls(session: AsyncSession, calls: list[str]) -> Any:
    """Count the calls the session's connection hands aiosqlite's thread from now on (the
    connection stays counted: the pools keep it)."""
    adapted = (await (await session.connection()).get_raw_connection()).dbapi_connection
    assert adapted is not None
    driver = adapted.driver_connection
    original = driver._execute

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(fn, *args, **kwargs)

    driver._execute = counted
    return adapted


async def test_a_read_is_one_call_on_the_driver_thread(store: Store) -> None:
    calls: list[str] = []
    async with store.read() as session:
        adapted = await _count_driver_calls(session, calls)
        assert type(adapted) is OneTripConnection
        assert (await session.execute(text("SELECT 1, 2"))).all() == [(1, 2)]
        assert calls == ["_run"]  # SQLAlchemy's adapter: cursor, execute, fetchall, close


async def test_the_writer_waits_on_the_thread_and_works_on_the_loop(store: Store) -> None:
    calls: list[str] = []
    async with store.write() as session:
        assert type(await _count_driver_calls(session, calls)) is InlineConnection
    calls.clear()
    async with store.write() as session:
        await session.connection()
        assert calls == ["_run"]  # BEGIN IMMEDIATE, which may wait for another writer
        await session.execute(insert(teams).values(name="billing"))
        assert (await session.execute(select(teams.c.name))).scalars().all() == ["billing"]
        assert calls == ["_run"]  # the statements inside the transaction: no trip
    # COMMIT, which may checkpoint and fsync; and nothing more: the pool's reset on return
    # has no transaction to roll back, so it makes no trip.
    assert calls == ["_run", "commit"]


async def test_a_failed_write_transaction_is_rolled_back_on_the_thread(store: Store) -> None:
    calls: list[str] = []
    async with store.write() as session:
        await _count_driver_calls(session, calls)
    calls.clear()

    async def fail_after_an_insert() -> None:
        async with store.write() as session:
            await session.execute(insert(teams).values(name="billing"))
            raise RuntimeError("the batch failed after its insert")

    with pytest.raises(RuntimeError):
        await fail_after_an_insert()
    assert calls == ["_run", "rollback"]
    async with store.read() as session:
        assert (await session.scalars(select(teams.c.name))).all() == []


async def test_a_writer_waiting_for_another_process_leaves_the_loop_running(
    store: Store,
) -> None:
    """Another connection (the CLI, a worker) holds SQLite's write lock for 0.6 s: the
    gateway's writer waits for it on aiosqlite's thread while the event loop goes on."""
    path = store.url.database
    assert path is not None
    locked, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO teams (name) VALUES ('other process')")
        locked.set()
        release.wait(10)
        connection.execute("COMMIT")
        connection.close()

    holder = threading.Thread(target=other_writer)
    holder.start()
    assert await asyncio.to_thread(locked.wait, 10)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> float:
        async with store.write() as session:
            await session.execute(insert(teams).values(name="ours"))
        return time.monotonic()

    ticking = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.6)
    assert not writing.done()  # waiting for the lock
    released = time.monotonic()
    release.set()
    committed = await writing
    ticking.cancel()
    holder.join()
    assert committed >= released
    assert ticks >= 30  # the loop ran through the wait: about 60 ticks of 10 ms
    async with store.read() as session:
        names = (await session.scalars(select(teams.c.name).order_by(teams.c.id))).all()
    assert names == ["other process", "ours"]


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
