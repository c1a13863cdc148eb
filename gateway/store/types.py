"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    # On SQLite a datetime is text, and SQLAlchemy's conversion (a dict and a %-format per
    # value, then our step above) was 6% of the CPU of routing a batch: one step each way,
    # the same text, through the C methods of datetime.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_datetime


_last_text: tuple[object, str] = (None, "")
"""The last datetime converted and its text: a batch binds its one ``now`` a dozen times a row."""


def _sqlite_text(value: datetime | None) -> str | None:
    """SQLite's stored form, as SQLAlchemy writes it: ``2026-11-23 18:30:32.000123`` (UTC)."""
    global _last_text
    if value is None:
        return None
    last = _last_text  # one read: another thread may replace the pair, never half of it
    if last[0] is value:  # the same object (kept alive by the pair), so the same text
        return last[1]
    if not isinstance(value, datetime):
        raise TypeError("a UTC column takes a datetime")
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    stored = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    _last_text = (value, stored)
    return stored


def _sqlite_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
