"""Engines and transactions.

SQLite allows one writer at a time. Rather than letting concurrent writers collide on
``database is locked``, writes go through their own engine with a single pooled connection (the
pool queues writers in order) and open with ``BEGIN IMMEDIATE`` (a deferred transaction that later
upgrades to a write can deadlock with another process's writer, and SQLite then fails at once
instead of waiting). Reads use a second engine and run beside the writer thanks to WAL.
PostgreSQL needs none of this: one engine serves both.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.compiler import InsertmanyvaluesSentinelOpts

from gateway.store.sqlite_cursor import use_one_trip_cursors

_PG_WRITERS = 2

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable across process crashes in WAL mode; fsync per checkpoint
    "PRAGMA busy_timeout=30000",  # another process (the CLI, a worker) may hold the write lock
    "PRAGMA foreign_keys=ON",
)


def _prepare_sqlite(engine: AsyncEngine, *, begin: str, inline: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        use_one_trip_cursors(dbapi_connection, inline=inline)
        # Take transaction control from the driver so that BEGIN is ours (see the module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _drop_closed_on_checkout(engine: AsyncEngine) -> None:
    """Replace a pooled PostgreSQL connection the server has closed before handing it out.

    ``pool_pre_ping`` would send BEGIN, an empty query and ROLLBACK at every checkout: three
    round trips of a batch's eleven, for a check asyncpg already keeps locally. When the server
    ends a session (a restart, ``pg_terminate_backend``, an idle timeout) the socket closes and
    asyncpg marks the connection closed as soon as the event loop reads the EOF; the pool then
    opens a fresh one instead. A connection that dies unannounced fails its statement, which
    SQLAlchemy recognises as a disconnect and invalidates (ingest retries such a batch).
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("the server closed this pooled connection")


def _ensure_sqlite_dir(url: URL) -> None:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def on_postgres(session: AsyncSession) -> bool:
    """Whether ``session`` works on PostgreSQL (row and advisory locks, arrays, its planner)."""
    return session.get_bind().dialect.name == "postgresql"


class Store:
    """The database: ``write()`` and ``read()`` give a session inside one transaction."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            _ensure_sqlite_dir(self.url)
            # The writer's statements inside a transaction run on the event loop's thread, its
            # BEGIN and COMMIT on aiosqlite's (``sqlite_cursor``): sqlite3 must accept calls
            # from both (SQLAlchemy asks for that on a file database already; said here too).
            self.write_engine = create_async_engine(
                self.url,
                echo=echo,
                pool_size=1,
                max_overflow=0,
                pool_timeout=120,
                connect_args={"check_same_thread": False},
            )
            _prepare_sqlite(self.write_engine, begin="BEGIN IMMEDIATE", inline=True)
            # A multi-row INSERT ... RETURNING whose rows must come back in parameter order (the
            # ORM's flush, ingest's batches) is sent one row at a time on SQLite: SQLAlchemy will
            # not assume SQLite numbers the rows in order. It does (each new rowid is the
            # largest + 1, rows in VALUES order, and this engine is the only writer), as MySQL
            # does, for which SQLAlchemy makes the same assumption. One statement per batch
            # instead of one per row: a third of ingest's time at 100-message batches.
            self.write_engine.dialect.insertmanyvalues_implicit_sentinel = (
                InsertmanyvaluesSentinelOpts.ANY_AUTOINCREMENT
            )
            self.read_engine = create_async_engine(self.url, echo=echo, pool_size=5)
            _prepare_sqlite(self.read_engine, begin="BEGIN", inline=False)
        else:
            self.write_engine = create_async_engine(
                self.url, echo=echo, pool_size=10, max_overflow=20
            )
            _drop_closed_on_checkout(self.write_engine)
            self.read_engine = self.write_engine
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def writers(self) -> int:
        """How many group-commit batches (ingest's and the router's together) are written at once.

        SQLite has one writer anyway. PostgreSQL spends a batch mostly waiting on round trips
        and its commit's fsync, so two overlap; every writer more makes the batches smaller,
        and a batch has a fixed cost in statements (pipeline alone at 1,000 messages/s
        offered, load 3-4: p99 36-38 ms with 2, 50-80 ms with 1; webhook updates: 1.2 ms of
        CPU each with 1, 1.8 with 2, 2.2-2.6 with 4 taking no turns).
        """
        return 1 if self.is_sqlite else _PG_WRITERS

    def write_turns(self) -> asyncio.Semaphore:
        """The turns (:attr:`writers` of them) that group commits share (``gateway.batching``).

        One semaphore per event loop: a store used from another loop (a worker's job, a test)
        gets its own.
        """
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = asyncio.Semaphore(self.writers)
        return turns

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        async with self._writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only view (the transaction is rolled back at the end)."""
        async with self._reader() as session:
            yield session  # closing the session rolls the implicit transaction back

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self.read_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
