"""An update whose storing keeps hitting PostgreSQL's ``statement_timeout`` (its content makes
a query slow) is parked after :data:`channels.failures.STATEMENT_TIMEOUTS` tries, and can be
replayed; PostgreSQL's passing failures still never park one. On a real PostgreSQL, its
failures caused as :mod:`tests.pg_faults` describes."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from channels import failures
from channels.telegram import polling, webhook
from channels.telegram.state import load_offset
from gateway.appkeys import PIPELINE
from gateway.backoff import Backoff
from gateway.inbound_admin import parked_inputs
from gateway.inbound_replay import replay
from gateway.replay_sweep import REPLAY_SWEEP, Pass
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ParkedInbound, TicketMessage
from tests import pg_faults
from tests.channels.telegram.conftest import (
    MakeGateway,
    count,
    load_fixture,
    messages,
    post_update,
    telegram_settings,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.factories import Clock

pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def update(n: int, text: str, *, chat: int | None = None) -> dict[str, Any]:
    u = load_fixture("private_text")
    u["update_id"] = 700 + n
    u["message"]["message_id"] = 100 + n
    u["message"]["text"] = text
    if chat is not None:
        u["message"]["chat"]["id"] = u["message"]["from"]["id"] = chat
    return u


async def test_an_update_timing_out_on_every_delivery_is_parked_and_replayed(
    db_url: str,
    settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A statement timeout was a passing failure, whatever the update: one whose own content
    made storing it slow was answered 500 on every delivery, Telegram held the chat's later
    updates back behind it, and after 24 hours dropped it, the customer's message lost."""
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 2)  # timeouts are allowed more than that
    huge = update(1, f"my order, described at length {pg_faults.SLOW}")
    async with pg_faults.admin(db_url) as admin:
        app, client = await make_gateway(settings)
        async with pg_faults.slow_for_its_content(admin):
            tries = [await post_update(client, huge) for _ in range(failures.STATEMENT_TIMEOUTS)]
            assert tries == [500] * (failures.STATEMENT_TIMEOUTS - 1) + [200]
            # Another chat's message is stored meanwhile: the database is well.
            assert await post_update(client, update(2, "hello", chat=4242)) == 200
            await app[PIPELINE].drain()
            assert [m.text for m in await messages(db)] == ["hello"]
            [parked] = await parked_inputs(db)
            assert (parked.external_id, parked.reason, parked.attempts) == (
                "update:701",
                "statement_timeout",
                failures.STATEMENT_TIMEOUTS,
            )
            assert "statement timeout" in (parked.detail or "")
            assert await post_update(client, huge) == 200  # delivered again: parked already
        # The cause fixed (the query made fast), an admin replays it.
        await replay(settings, db, parked.id)
    assert sorted(m.text for m in await messages(db)) == ["hello", huge["message"]["text"]]
    assert await parked_inputs(db) == []


async def test_a_polled_update_timing_out_every_time_is_parked_and_polling_goes_on(
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Any,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Polled, the update timing out was retried for ever, and every chat waited behind it."""
    monkeypatch.setattr(polling, "MAX_ATTEMPTS", 2)
    monkeypatch.setattr(polling, "Backoff", lambda **_: Backoff(base=0.01, cap=0.02))
    settings = telegram_settings(
        fake, db_url, redis_url, tmp_path, mode="polling", webhook_secret=None, poll_timeout=1
    )
    fake.push_update(update(1, f"a long story {pg_faults.SLOW}"))
    fake.push_update(update(2, "and then this"))
    async with pg_faults.admin(db_url) as admin, pg_faults.slow_for_its_content(admin):
        _, client = await make_gateway(settings)
        deadline = time.monotonic() + 30
        while await load_offset(db) != 703:
            assert time.monotonic() < deadline, "polling is stuck on the update timing out"
            await asyncio.sleep(0.05)
        await client.close()
    assert [m.text for m in await messages(db)] == ["and then this"]
    async with db.read() as session:
        [parked] = (await session.scalars(select(ParkedInbound))).all()
    assert (parked.external_id, parked.reason, parked.attempts) == (
        "update:701",
        failures.TIMED_OUT,
        failures.STATEMENT_TIMEOUTS,
    )
    assert pg_faults.SLOW.encode() in parked.raw


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(pg_faults.table_locked, id="55P03-lock-timeout"),
        pytest.param(pg_faults.connection_ended, id="57P01-connection-ended"),
        # Ended for real, the connection reaches us as 08003 ("closed in the middle of
        # operation"); raised, 57P01 itself: class 57, yet no statement timeout.
        pytest.param(pg_faults.raising("57P01"), id="57P01-admin-shutdown"),
        pytest.param(pg_faults.raising("40P01"), id="40P01-deadlock"),
        pytest.param(pg_faults.raising("40001"), id="40001-serialization"),
        pytest.param(pg_faults.raising("08006"), id="08006-connection-failure"),
    ],
)
async def test_passing_postgres_failures_never_park_an_update(
    db_url: str,
    settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
    fault: pg_faults.Fault,
) -> None:
    """Guard: a statement timeout now counts toward parking; a lock timeout, a deadlock, a
    connection lost or a server restart still say nothing about the update, however often."""
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 2)
    message = update(1, "where is my parcel?")
    async with pg_faults.admin(db_url) as admin:
        app, client = await make_gateway(settings)
        async with fault(admin):
            tries = failures.STATEMENT_TIMEOUTS + 2
            assert [await post_update(client, message) for _ in range(tries)] == [500] * tries
        assert await count(db, ParkedInbound) == 0
        assert await post_update(client, message) == 200
        await app[PIPELINE].drain()
    assert await count(db, TicketMessage) == 1


async def test_updates_parked_while_the_database_was_slow_come_back_by_themselves(
    db_url: str,
    settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    clock: Clock,
) -> None:
    """Parked for statement timeouts, a customer's message waited for an operator to notice
    it and run ``gateway inbound replay``: the gateway's sweep now replays it once the
    database answers normally again."""
    message = update(1, f"written while the database was slow {pg_faults.SLOW}")
    async with pg_faults.admin(db_url) as admin:
        app, client = await make_gateway(settings)
        sweep = app[REPLAY_SWEEP]
        async with pg_faults.slow_for_its_content(admin):
            tries = [await post_update(client, message) for _ in range(failures.STATEMENT_TIMEOUTS)]
            assert tries[-1] == 200
            clock.now += timedelta(minutes=1)
            # Still slow: the replay times out again, is counted, and ends the pass.
            done = await sweep.sweep()
            assert (done.replayed, len(done.failed)) == ((), 1)
        [parked] = await parked_inputs(db)
        assert parked.reason == failures.TIMED_OUT
        clock.now += timedelta(minutes=1)
        [replayed] = (await sweep.sweep()).replayed
        assert replayed == parked.id
        clock.now += timedelta(minutes=1)
        assert await sweep.sweep() == Pass()
        await app[PIPELINE].drain()
    assert [m.text for m in await messages(db)] == [message["message"]["text"]]
    assert await parked_inputs(db) == []
