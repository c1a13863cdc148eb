"""Ticket numbers: ``G`` + local date + per-day sequence, unique and gap-free under concurrency."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.numbering import format_number, local_day
from gateway.store import Store
from tests.factories import Clock, inbound, make_ingest


def test_format_has_at_least_three_digits() -> None:
    assert format_number("20261122", 1) == "G20261122001"
    assert format_number("20261122", 999) == "G20261122999"
    assert format_number("20261122", 1000) == "G202611221000"


@pytest.mark.parametrize(
    ("moment", "zone", "day"),
    [
        # 23:59 UTC on the 21st is already the 22nd in Shanghai (UTC+8) ...
        (datetime(2026, 11, 21, 16, 0, tzinfo=UTC), "Asia/Shanghai", "20261122"),
        (datetime(2026, 11, 21, 15, 59, 59, tzinfo=UTC), "Asia/Shanghai", "20261121"),
        # ... and still the 21st in New York.
        (datetime(2026, 11, 22, 4, 59, tzinfo=UTC), "America/New_York", "20261121"),
    ],
)
def test_local_day_follows_the_time_zone(moment: datetime, zone: str, day: str) -> None:
    assert local_day(moment, ZoneInfo(zone)) == day


async def test_200_concurrent_creations_get_consecutive_numbers(store: Store) -> None:
    ingest = make_ingest(store)
    results = await asyncio.gather(
        *(ingest(inbound(external_user_id=f"user-{i}", thread_key=f"chat-{i}")) for i in range(200))
    )
    numbers = sorted(r.ticket.number for r in results)
    assert all(r.new_ticket for r in results)
    assert all(re.fullmatch(r"G20261122\d{3}", n) for n in numbers)
    assert numbers == [f"G20261122{seq:03d}" for seq in range(1, 201)]


async def test_sequence_restarts_on_the_shops_local_day(store: Store) -> None:
    clock = Clock(datetime(2026, 11, 21, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    ingest = make_ingest(store, clock)
    before = await ingest(inbound(external_user_id="a", thread_key="a"))
    clock.now = datetime(2026, 11, 21, 16, 30, tzinfo=UTC)  # 00:30 the next day in Shanghai
    after = await ingest(inbound(external_user_id="b", thread_key="b"))
    second = await ingest(inbound(external_user_id="c", thread_key="c"))
    assert before.ticket.number == "G20261121001"
    assert after.ticket.number == "G20261122001"
    assert second.ticket.number == "G20261122002"


async def test_a_rolled_back_creation_leaves_no_gap(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = make_ingest(store)
    first = await ingest(inbound(external_user_id="a", thread_key="a"))

    async def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr("gateway.ingest.transaction.write_outbox", boom)
    with pytest.raises(RuntimeError, match="injected"):
        await ingest(inbound(external_user_id="b", thread_key="b"))
    monkeypatch.undo()
    third = await ingest(inbound(external_user_id="c", thread_key="c"))
    assert (first.ticket.number, third.ticket.number) == ("G20261122001", "G20261122002")
