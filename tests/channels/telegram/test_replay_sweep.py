"""The running gateway replays, by itself, the inputs parked for statement timeouts once the
database answers normally again (:mod:`gateway.replay_sweep`); input parked for its own fault
waits for a person. On SQLite and PostgreSQL; PostgreSQL's real statement timeout is caused in
``test_statement_timeout.py``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from channels import failures
from channels.email.cursor import park as park_mail
from channels.telegram import webhook
from channels.telegram.inbound import TelegramInbound
from gateway.appkeys import METRICS, PIPELINE
from gateway.inbound_admin import parked_inputs
from gateway.inbound_replay import replay
from gateway.replay_sweep import MAX_AUTO_REPLAYS, REPLAY_SWEEP, Pass
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ParkedInbound
from tests import pg_faults
from tests.channels.email.mailmaker import mail
from tests.channels.telegram.conftest import (
    Gateway,
    load_fixture,
    messages,
    post_update,
)
from tests.factories import Clock


def statement_timeout() -> DBAPIError:
    """PostgreSQL's statement timeout as it reaches a channel (SQLSTATE 57014, through asyncpg
    and SQLAlchemy). Raised by hand: SQLite has no statement timeout to cause."""
    return DBAPIError(
        "INSERT INTO ticket_messages ...",
        None,
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    )


def update(n: int, text: str) -> dict[str, Any]:
    u = load_fixture("private_text")
    u["update_id"] = 900 + n
    u["message"]["message_id"] = 300 + n
    u["message"]["text"] = text
    u["message"]["chat"]["id"] = u["message"]["from"]["id"] = 5000 + n
    return u


class Failing:
    """``TelegramInbound.handle`` failing with what ``error`` makes while ``on``; counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: Any) -> None:
        self.on = True
        self.calls = 0
        real = TelegramInbound.handle

        async def handle(inbound: TelegramInbound, update: Mapping[str, Any]) -> None:
            self.calls += 1
            if self.on:
                raise error()
            await real(inbound, update)

        monkeypatch.setattr(TelegramInbound, "handle", handle)


async def park_update(client: Any, u: dict[str, Any], tries: int) -> None:
    """Post ``u`` (failing each time) until the webhook parks it and answers 200."""
    assert [await post_update(client, u) for _ in range(tries)] == [500] * (tries - 1) + [200]


async def park_timed_out_mail(db: Store, clock: Clock, text: str) -> None:
    """A mail the listener parked after its statement timeouts, as it parks one."""
    await park_mail(
        db,
        external_id="<slow@example.org>",
        reason=failures.TIMED_OUT,
        detail="DBAPIError('canceling statement due to statement timeout')",
        raw=mail("ann@example.org", text=text, message_id="<slow@example.org>"),
        attempts=failures.STATEMENT_TIMEOUTS,
        now=clock(),
    )


async def auto_replays(db: Store) -> dict[str, int]:
    async with db.read() as session:
        rows = await session.execute(select(ParkedInbound.external_id, ParkedInbound.auto_replays))
        return {str(external_id): count for external_id, count in rows.all()}


def replayed_metric(app: Any, channel: str, outcome: str) -> float:
    value = app[METRICS].registry.get_sample_value(
        "gateway_inbound_replayed_total", {"channel": channel, "outcome": outcome}
    )
    return float(value or 0.0)


async def test_inputs_parked_for_timeouts_are_replayed_once_and_their_own_faults_are_not(
    gateway: Gateway,
    db: Store,
    clock: Clock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parked for statement timeouts (the database slow for everyone a while), customers'
    messages waited for an operator's ``gateway inbound replay``, one by one, unseen until
    someone noticed."""
    app, client = gateway
    sweep = app[REPLAY_SWEEP]
    assert sweep.every == settings.parked_replay_seconds == 60.0
    monkeypatch.setattr(webhook, "MAX_ATTEMPTS", 2)
    slow = update(1, "the database was slow when I wrote")
    failing = Failing(monkeypatch, statement_timeout)
    await park_update(client, slow, failures.STATEMENT_TIMEOUTS)
    poison = update(2, "an update meeting a bug of ours")
    failing_own = Failing(monkeypatch, lambda: RuntimeError("a bug"))
    await park_update(client, poison, 2)
    await park_timed_out_mail(db, clock, "My parcel never came.")
    assert {p.external_id: p.reason for p in await parked_inputs(db)} == {
        "update:901": "statement_timeout",
        "update:902": "failed",
        "<slow@example.org>": "statement_timeout",
    }
    failing.on = failing_own.on = False  # the database well again; the bug still there

    # Parked under a minute ago: not yet (a slow spell lasts a while).
    clock.now += timedelta(seconds=59)
    assert await sweep.sweep() == Pass()
    clock.now += timedelta(seconds=1)
    calls = failing_own.calls
    done = await sweep.sweep()
    assert len(done.replayed) == 2 and done.failed == () and not done.skipped
    await app[PIPELINE].drain()
    texts = sorted(m.text.strip() for m in await messages(db))
    assert texts == ["My parcel never came.", "the database was slow when I wrote"]
    # The update parked for its own fault was not fed in: it waits for a person.
    assert failing_own.calls == calls + 1  # the one replayed update only
    [left] = await parked_inputs(db)
    assert (left.external_id, left.reason) == ("update:902", "failed")
    assert replayed_metric(app, "telegram", "replayed") == 1.0
    assert replayed_metric(app, "email", "replayed") == 1.0

    # A second pass stores nothing.
    clock.now += timedelta(minutes=5)
    assert await sweep.sweep() == Pass()
    await app[PIPELINE].drain()
    assert len(await messages(db)) == 2
    assert await auto_replays(db) == {"update:902": 0}


async def test_an_input_failing_again_is_counted_and_left_for_a_person_after_the_cap(
    gateway: Gateway,
    db: Store,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One timing out on every replay is slow for its own content: replayed for ever, it
    would time out every minute for ever, and nobody would be told."""
    app, client = gateway
    sweep = app[REPLAY_SWEEP]
    failing = Failing(monkeypatch, statement_timeout)
    await park_update(client, update(1, "huge"), failures.STATEMENT_TIMEOUTS)
    for n in range(1, MAX_AUTO_REPLAYS + 1):
        clock.now += timedelta(minutes=1)
        calls = failing.calls
        done = await sweep.sweep()
        assert (done.replayed, len(done.failed)) == ((), 1)
        assert failing.calls == calls + 1
        assert await auto_replays(db) == {"update:901": n}
    clock.now += timedelta(minutes=1)
    calls = failing.calls
    assert await sweep.sweep() == Pass()  # left for a person
    assert failing.calls == calls
    [left] = await parked_inputs(db)
    assert left.reason == "statement_timeout"
    assert await messages(db) == []
    assert replayed_metric(app, "telegram", "failed") == MAX_AUTO_REPLAYS
    # A person replays it once the cause is fixed, as before.
    failing.on = False
    await replay(sweep.settings, db, left.id)
    assert [m.text for m in await messages(db)] == ["huge"]


async def test_a_failure_saying_the_database_is_unwell_ends_the_pass(
    gateway: Gateway,
    db: Store,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replays into a database slow again would each wait out its timeout: the first that
    times out ends the pass, and the others are neither tried nor counted."""
    app, client = gateway
    failing = Failing(monkeypatch, statement_timeout)
    for n in (1, 2, 3):
        await park_update(client, update(n, f"message {n}"), failures.STATEMENT_TIMEOUTS)
    clock.now += timedelta(minutes=1)
    calls = failing.calls
    done = await app[REPLAY_SWEEP].sweep()
    assert (done.replayed, len(done.failed)) == ((), 1)
    assert failing.calls == calls + 1
    assert await auto_replays(db) == {"update:901": 1, "update:902": 0, "update:903": 0}


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_pass_while_the_database_does_not_answer_normally_does_nothing(
    db_url: str,
    settings: Settings,
    make_gateway: Any,
    db: Store,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replaying into a database still slow would only park the inputs' time away: the sweep
    checks first. The messages' table locked (as by a migration), the check does not get its
    answer within the lock timeout. PostgreSQL only: SQLite's readers are never locked out."""
    async with pg_faults.admin(db_url) as admin:
        app, client = await make_gateway(settings)
        failing = Failing(monkeypatch, statement_timeout)
        await park_update(client, update(1, "hello"), failures.STATEMENT_TIMEOUTS)
        failing.on = False
        clock.now += timedelta(minutes=1)
        calls = failing.calls
        async with pg_faults.table_locked(admin):
            assert await app[REPLAY_SWEEP].sweep() == Pass(skipped=True)
        assert failing.calls == calls
        assert await auto_replays(db) == {"update:901": 0}
        assert await messages(db) == []
        # Unlocked, the next pass replays it.
        assert len((await app[REPLAY_SWEEP].sweep()).replayed) == 1
        await app[PIPELINE].drain()
    assert [m.text for m in await messages(db)] == ["hello"]
