"""Ticket numbers: ``G`` + local date ``YYYYMMDD`` + a per-day sequence of at least 3 digits.

The sequence comes from one counter row per day, bumped by an upsert inside the transaction that
creates the ticket. The row lock (PostgreSQL) or the single writer (SQLite) orders concurrent
creators, and a rolled-back creation rolls its bump back too, so numbers are unique and gap-free.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.tables import TicketCounter

PREFIX = "G"


def local_day(moment: datetime, zone: ZoneInfo) -> str:
    """The ``YYYYMMDD`` of ``moment`` in the shop's time zone."""
    return moment.astimezone(zone).strftime("%Y%m%d")


def format_number(day: str, seq: int) -> str:
    return f"{PREFIX}{day}{seq:03d}"


async def reserve_ticket_numbers(
    session: AsyncSession, moment: datetime, zone: ZoneInfo, count: int
) -> list[str]:
    """Take the next ``count`` numbers of ``moment``'s local day, in the caller's transaction."""
    if count < 1:
        return []
    day = local_day(moment, zone)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, TicketCounter.__table__)
    statement = (
        insert(table)
        .values(day=day, last_seq=count)
        .on_conflict_do_update(
            index_elements=[table.c.day], set_={"last_seq": table.c.last_seq + count}
        )
        .returning(table.c.last_seq)
    )
    last = (await session.execute(statement)).scalar_one()
    return [format_number(day, seq) for seq in range(last - count + 1, last + 1)]
