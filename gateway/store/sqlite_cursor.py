"""SQLite statements without SQLAlchemy's four trips to aiosqlite's thread, or with none.

aiosqlite runs every call on the sqlite3 connection in a thread of its own; each call is a
round trip (queue the call, wake the thread, wake the event loop with the result). SQLAlchemy's
adapter makes four per statement: open a cursor, execute, fetch the rows, close the cursor.
On this project's machines a round trip costs 0.08-0.1 ms of CPU, so ``SELECT 1`` cost 0.45 ms
through a session, and an ingest batch of ten statements 3-4 ms before doing any work.

:class:`OneTripCursor` does the four steps in one function (:func:`_run`) and keeps what
SQLAlchemy reads afterwards: the rows, ``description``, ``rowcount`` and ``lastrowid``. Where
that function runs depends on the connection:

- :class:`OneTripConnection` (the read pool): on aiosqlite's thread, one trip per statement
  (aiosqlite's ``_execute``, which its own ``execute_fetchall`` uses). A read may be long (a
  report over a year of tickets) and must not stop the event loop.
- :class:`InlineConnection` (the write connection): on the event loop's own thread, no trip at
  all, for every statement inside a transaction. The one writer holds SQLite's write lock from
  ``BEGIN IMMEDIATE`` to ``COMMIT``, so such a statement waits for no other connection: it is
  SQLite's own work on pages the OS has cached (a batch's statements take tens of
  microseconds to a millisecond, the Python that builds them longer). What may wait stays on
  the thread: ``BEGIN`` (another process's writer, up to ``busy_timeout``), ``COMMIT`` and
  ``ROLLBACK`` (SQLAlchemy sends them as driver calls, not statements; a commit may
  checkpoint the WAL and fsync), and ``PRAGMA`` (the connection's set-up). The trip saved is
  more than its CPU: the loop no longer waits for the thread to get the GIL back, which it
  holds while it works. Measured in alternation with the code before (``bench/ab.py``, three
  pairs of ``bench/telegram.py --db sqlite --per-chat 2``): webhook updates/s x1.24, the
  server's CPU per update x0.81.

Server-side cursors (``stream()``) keep SQLAlchemy's own adapter, on the thread.
:func:`use_one_trip_cursors` switches a connection over when it opens, and leaves it alone if
aiosqlite ever drops ``_execute``.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.util import EMPTY_DICT

_Outcome = tuple[Any, list[Any], int, int | None]
"""``(description, rows, rowcount, lastrowid)`` of one statement."""

_MAY_WAIT = ("BEGIN", "COMMIT", "END", "ROLLBACK", "PRAGMA", "VACUUM")
"""Statements an :class:`InlineConnection` still sends to the thread: they may wait for a lock
held by another connection, or for the disk."""


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """The whole statement, its cursor opened and closed here (on aiosqlite's thread, or on the
    event loop's for an :class:`InlineConnection`)."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, each statement one call on aiosqlite's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No driver cursor is opened here (a round trip of its own): each statement opens one.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1  # sqlite3's default

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None  # nothing is left open: the rows are already here

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._one_trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        await self._one_trip(operation, seq_of_parameters, many=True)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        driver = self._connection
        outcome: _Outcome
        async with self._adapt_connection._execute_mutex:
            if type(self._adapt_connection) is InlineConnection and not _may_wait(operation):
                outcome = _run(driver._conn, operation, parameters, many)
            else:
                outcome = await driver._execute(_run, driver._conn, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


def _may_wait(operation: str) -> bool:
    return operation.lstrip()[:8].upper().startswith(_MAY_WAIT)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection, handing out :class:`OneTripCursor` cursors; each
    statement one call on aiosqlite's thread."""

    __slots__ = ()
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # the stubs name the exact class

    def rollback(self) -> None:
        """Roll back, unless no transaction is open: then skip the trip to aiosqlite's thread.

        The pool rolls back every connection handed back to it, after a ``COMMIT`` too (a
        session's connection has no transaction left to close then, so SQLAlchemy cannot tell
        the pool it was reset). sqlite3 does nothing when no transaction is open, but the trip
        to do nothing was a third of a write transaction's trips (BEGIN, COMMIT, this).
        ``in_transaction`` reads SQLite's autocommit flag, from any thread.
        """
        if self._connection._conn.in_transaction:
            super().rollback()


class InlineConnection(OneTripConnection):
    """A :class:`OneTripConnection` whose statements inside a transaction run on the event
    loop's thread (the module's doc says which stay on aiosqlite's)."""

    __slots__ = ()


def use_one_trip_cursors(dbapi_connection: Any, *, inline: bool = False) -> None:
    """Switch a connection SQLAlchemy just opened with aiosqlite to :class:`OneTripCursor`;
    with ``inline``, to :class:`InlineConnection`.

    ``inline`` is for a connection only one thread at a time uses, in one transaction of its
    own at a time (the write pool of one connection): sqlite3 is then called from two threads,
    the loop's and aiosqlite's, one after the other, never at once (each call is awaited, under
    SQLAlchemy's mutex), which needs the connection opened with ``check_same_thread=False``.
    """
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection and hasattr(
        dbapi_connection.driver_connection, "_execute"
    ):
        dbapi_connection.__class__ = InlineConnection if inline else OneTripConnection
