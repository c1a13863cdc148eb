"""Many rows into one table in one statement, without SQLAlchemy's work per row.

Ingest and routing insert a batch's tickets, messages, contacts, events and outbox rows as one
statement each. Given rows whose new ids it must return in order, SQLAlchemy's "insertmanyvalues"
on PostgreSQL sends ``INSERT ... SELECT ... FROM (VALUES (..., 0), (..., 1)) ORDER BY`` that
counter, with a cast on every parameter, and sorts the returned rows by it; and on both
databases it builds a parameter dict per row and converts it through its execution context.
:class:`BulkInsert` converts the values with the same bind processors and sends:

- on PostgreSQL, ``INSERT ... SELECT * FROM unnest($1::integer[], $2::text[], ...)``: one
  array per column, so the statement's text is the same for any number of rows and asyncpg
  prepares it once per connection (a VALUES list has a text, a prepare and a plan per batch
  size, more than the connection's cache of 100 statements holds across five tables);
- on SQLite, ``INSERT ... VALUES (?, ...), (?, ...)``, its text built once per batch size,
  when the new ids are wanted; otherwise one row's ``INSERT`` through sqlite3's
  ``executemany``.

Measured in alternation with the code before (see the commits): on PostgreSQL the Telegram
webhook's ratio to the bare POST rose by a quarter (``bench/ab.py``); on SQLite the server's
CPU per update without HTTP fell by a tenth, and through HTTP the difference is within noise.

The new ids come back in the rows' order: both databases number a statement's new rows in
the order it inserts them (SQLite the largest id + 1 under the one writer's lock, which
SQLAlchemy's own path on SQLite assumes too, see ``Store``; PostgreSQL by calling the sequence
once per row, rows taken from the VALUES list or the arrays in order), so sorting the returned
ids suffices whatever order RETURNING gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Enum, String, Table, insert
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Executable

_MAX_VARIABLES = 32_766
"""Bound parameters a statement may carry: SQLite's ``SQLITE_MAX_VARIABLE_NUMBER`` (since
3.32; asyncpg allows 32,767)."""

_Processor = Callable[[Any], Any] | None


class BulkInsert:
    """``INSERT INTO table (...) VALUES ...`` of many rows, optionally ``RETURNING`` the new
    ids (the table's integer primary key) in the rows' order."""

    def __init__(self, table: Table, *, returning: Column[Any] | None = None) -> None:
        if returning is not None and returning is not table.autoincrement_column:
            raise ValueError("only the autoincrement primary key is returned in the rows' order")
        self.table = table
        self.returning = returning
        # SQLAlchemy's own statement, for rows this class leaves to it.
        self.statement: Executable = (
            insert(table).returning(returning, sort_by_parameter_order=True)
            if returning is not None
            else insert(table)
        )
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
        if dialect.name not in ("sqlite", "postgresql") or not self._defaulted <= set(columns):
            handled = await session.execute(self.statement, list(rows))
            return list(handled.scalars().all()) if self.returning is not None else []
        processors = self._processors.get((dialect.name, columns))
        if processors is None:
            processors = _bind_processors(self.table, columns, dialect)
            self._processors[(dialect.name, columns)] = processors
        converting = list(zip(columns, processors, strict=True))
        values = [
            tuple(p(row[key]) if p is not None else row[key] for key, p in converting)
            for row in rows
        ]
        chunks: list[tuple[str, Any]]
        if dialect.name == "postgresql":
            # One array per column: the same text for any number of rows.
            arrays = tuple(list(column) for column in zip(*values, strict=True))
            chunks = [(self._text(dialect, columns, 0), arrays)]
        elif self.returning is None:
            # Nothing to read back: sqlite3's executemany binds each row to one prepared
            # statement, in C.
            chunks = [(self._text(dialect, columns, 1), values)]
        else:
            per_statement = max(1, _MAX_VARIABLES // len(columns))
            parts = [values[i : i + per_statement] for i in range(0, len(values), per_statement)]
            chunks = [
                (self._text(dialect, columns, len(part)), tuple(v for row in part for v in row))
                for part in parts
            ]
        returned: list[Any] = []
        for text, parameters in chunks:
            result: Result[Any] = await connection.exec_driver_sql(text, parameters)
            if self.returning is not None:
                # RETURNING promises no order; the ids do (the module's doc).
                returned.extend(sorted(r[0] for r in result.all()))
        return returned

    def _text(self, dialect: Dialect, columns: tuple[str, ...], count: int) -> str:
        """The statement for ``count`` rows (on PostgreSQL, for any number: ``count`` is 0)."""
        cached = (dialect.name, columns, count)
        text = self._texts.get(cached)
        if text is None:
            # Names and types from this table's own metadata; values are bound.
            quote = dialect.identifier_preparer.quote
            names = ", ".join(quote(self.table.c[key].name) for key in columns)
            if dialect.name == "postgresql":
                arrays = ", ".join(
                    f"${i + 1}::{_array_type(self.table.c[key], dialect)}"
                    for i, key in enumerate(columns)
                )
                rows = f"SELECT * FROM unnest({arrays})"  # noqa: S608
            else:
                group = "(" + ", ".join("?" * len(columns)) + ")"
                rows = "VALUES " + ", ".join([group] * count)
            text = f"INSERT INTO {quote(self.table.name)} ({names}) {rows}"
            if self.returning is not None:
                text += f" RETURNING {quote(self.returning.name)}"
            if len(self._texts) > 256:  # SQLite's texts vary with the batch size: bounded
                self._texts.clear()
            self._texts[cached] = text
        return text


def _array_type(column: Column[Any], dialect: Dialect) -> str:
    """The PostgreSQL array type ``column``'s values are sent as.

    Strings go as ``text[]``, not ``varchar(n)[]``: an explicit cast to ``varchar(n)`` cuts a
    longer value short without an error, where assigning it to the column refuses it.
    """
    if isinstance(column.type, String) and not isinstance(column.type, Enum):
        return "TEXT[]"
    return f"{column.type.compile(dialect=dialect)}[]"


def _bind_processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> list[_Processor]:
    """Each column's bind processor for ``dialect``: the conversion SQLAlchemy applies."""
    return [table.c[key].type._cached_bind_processor(dialect) for key in columns]
