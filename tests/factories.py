"""Builders for test inputs."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.ingest import Ingest
from gateway.models import Channel, InboundMessage
from gateway.store import Store
from gateway.store.tables import OutboxRow

_ids = itertools.count(1)
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def inbound(**fields: Any) -> InboundMessage:
    """A Telegram-like private message; any field can be overridden."""
    n = next(_ids)
    values: dict[str, Any] = {
        "channel": Channel.TELEGRAM,
        "external_id": f"msg-{n}",
        "external_user_id": "user-1",
        "thread_key": "chat-1",
        "text": f"question {n}",
        "sender_name": "Ann",
    }
    values.update(fields)
    return InboundMessage(**values)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOON) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RunningClock:
    """A clock that runs with real time from ``start``; the test can move it on by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.offset = (start or datetime.now(UTC)) - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def skip(self, by: timedelta) -> None:
        self.offset += by


def make_ingest(
    store: Store, clock: Callable[[], datetime] | None = None, *, zone: ZoneInfo = SHANGHAI
) -> Ingest:
    return Ingest(store, zone=zone, reopen_days=7, clock=clock or Clock())


async def owed(store: Store, count: int) -> list[int]:
    """``count`` contacts write in: one acknowledgement owed to each (its outbox row's id)."""
    ingest = make_ingest(store)
    for n in range(count):
        await ingest(inbound(external_user_id=f"user-{n}", thread_key=f"chat-{n}"))
    async with store.read() as session:
        return list((await session.scalars(select(OutboxRow.id).order_by(OutboxRow.id))).all())
