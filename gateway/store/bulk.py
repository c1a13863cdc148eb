"""Many rows into one table in one statement, without SQLAlchemy's work per row.

Ingest and routing insert a batch's tickets, messages, contacts, events and outbox rows as one
statement each. Given rows whose new ids it must return in order, SQLAlchemy's "insertmanyvalues"
on PostgreSQL sends ``INSERT ... SELECT ... FROM (VALUES (..., 0), (..., 1)) ORDER BY`` that
counter, with a cast on every parameter, and sorts the returned rows by it; and on both
databases it builds a parameter dict per row and converts it through its execution context.
:class:`BulkInsert` renders the plain ``INSERT ... VALUES (...), (...)`` itself (once per
column set and row count), converts the values with the same bind processors, and hands the
flat parameters to the driver (``exec_driver_sql``).

Measured with ``bench/ingest_batches.py`` (CPU per message, batches of 40, in alternation with
the code before): on PostgreSQL a new conversation's ingest costs a quarter to a third less,
its routing and a follow-up 5-20% less; on SQLite the difference is within noise (the
per-row work there is mostly SQLite's own, on aiosqlite's thread).

The new ids come back in the rows' order: both databases number a statement's new rows in
VALUES order (SQLite the largest id + 1 under the one writer's lock, which SQLAlchemy's own
path on SQLite assumes too, see ``Store``; PostgreSQL by calling the sequence once per row as
it inserts them), so sorting the returned ids suffices whatever order RETURNING gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Table, insert
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Executable

_MAX_VARIABLES = 32_766
"""Bound parameters a statement may carry: SQLite's ``SQLITE_MAX_VARIABLE_NUMBER`` (since
3.32; asyncpg allows 32,767)."""

_Processor = Callable[[Any], Any] | None

_PLACEHOLDERS: dict[str, Callable[[int], str]] = {
    "qmark": lambda _: "?",  # sqlite3
    "numeric_dollar": lambda i: f"${i + 1}",  # asyncpg
}
"""The drivers' parameter markers, by DB-API paramstyle: the ``i``-th parameter (from 0)."""


class BulkInsert:
    """``INSERT INTO table (...) VALUES ...`` of many rows, optionally ``RETURNING`` the new
    ids (the table's integer primary key) in the rows' order."""

    def __init__(self, table: Table, *, returning: Column[Any] | None = None) -> None:
        if returning is not None and returning is not table.autoincrement_column:
            raise ValueError("only the autoincrement primary key is returned in the rows' order")
        self.table = table
        self.returning = returning
        # SQLAlchemy's own statement, for rows this class leaves to it.
        self.statement: Executable = insert(table)
        if returning is not None:
            self.statement = insert(table).returning(returning, sort_by_parameter_order=True)
        # Columns a row may leave out only if SQLAlchemy would fill them in (Python-side
        # defaults): such rows keep SQLAlchemy's path.
        self._defaulted = frozenset(c.key for c in table.columns if c.default is not None)
        # By dialect too: one process may use both databases (the tests do).
        self._processors: dict[tuple[str, tuple[str, ...]], list[_Processor]] = {}
        self._texts: dict[tuple[str, tuple[str, ...], int], str] = {}

    async def __call__(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """Insert ``rows`` (all with the same keys); the returned column's values, in order."""
        if not rows:
            return []
        columns = tuple(rows[0])
        connection = await session.connection()
        dialect = connection.dialect
        if dialect.paramstyle not in _PLACEHOLDERS or not self._defaulted <= set(columns):
            handled = await session.execute(self.statement, list(rows))
            return list(handled.scalars().all()) if self.returning is not None else []
        processors = self._processors.get((dialect.name, columns))
        if processors is None:
            processors = _bind_processors(self.table, columns, dialect)
            self._processors[(dialect.name, columns)] = processors
        converting = [(key, p) for key, p in zip(columns, processors, strict=True)]
        per_statement = max(1, _MAX_VARIABLES // len(columns))
        returned: list[Any] = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = [
                p(row[key]) if p is not None else row[key] for row in chunk for key, p in converting
            ]
            result: Result[Any] = await connection.exec_driver_sql(
                self._text(dialect, columns, len(chunk)), tuple(values)
            )
            if self.returning is not None:
                # RETURNING promises no order; the ids do (the module's doc).
                returned.extend(sorted(r[0] for r in result.all()))
        return returned

    def _text(self, dialect: Dialect, columns: tuple[str, ...], count: int) -> str:
        key = (dialect.name, columns, count)
        text = self._texts.get(key)
        if text is None:
            # Names from this table's own metadata, quoted by the dialect; values are bound.
            quote = dialect.identifier_preparer.quote
            names = ", ".join(quote(self.table.c[key].name) for key in columns)
            placeholder = _PLACEHOLDERS[dialect.paramstyle]
            width = len(columns)
            groups = ", ".join(
                "(" + ", ".join(placeholder(row * width + i) for i in range(width)) + ")"
                for row in range(count)
            )
            text = f"INSERT INTO {quote(self.table.name)} ({names}) VALUES {groups}"  # noqa: S608
            if self.returning is not None:
                text += f" RETURNING {quote(self.returning.name)}"
            if len(self._texts) > 256:  # batch sizes vary; keep the cache bounded
                self._texts.clear()
            self._texts[key] = text
        return text


def _bind_processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> list[_Processor]:
    """Each column's bind processor for ``dialect``: the conversion SQLAlchemy applies."""
    return [table.c[key].type._cached_bind_processor(dialect) for key in columns]
