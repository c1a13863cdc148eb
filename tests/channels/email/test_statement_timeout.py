"""A mail whose storing keeps hitting PostgreSQL's ``statement_timeout`` (its content makes a
query slow) is parked after :data:`channels.failures.STATEMENT_TIMEOUTS` tries, and can be
replayed; PostgreSQL's passing failures still never park one. A real Dovecot and a real
PostgreSQL, its failures caused as :mod:`tests.pg_faults` describes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from channels import failures
from gateway.assembly import build_pipeline
from gateway.inbound_admin import parked_inputs
from gateway.inbound_replay import replay
from gateway.metrics import Metrics
from gateway.replay_sweep import Pass, ReplaySweep
from gateway.store.tables import ParkedInbound, TicketMessage
from gateway.store.types import utcnow
from knowledge_base.base import NeverMatches
from tests import pg_faults
from tests.channels.email.conftest import Dovecot, Mailroom
from tests.channels.email.mailmaker import mail
from tests.channels.email.test_listener import count, cursor_at, eventually, make_listener, running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize(
        "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
    ),
]


async def test_a_mail_timing_out_every_time_is_parked_and_the_rest_flows(
    db_url: str, mailroom: Mailroom, dovecot: Dovecot
) -> None:
    """A statement timeout was a passing failure, whatever the mail: one whose own content
    made storing it slow was read again and again for ever, and never parked."""
    huge = mail("long@example.org", text=f"my order, at length {pg_faults.SLOW}")
    await dovecot.append([huge, mail("fine@example.org")])
    async with pg_faults.admin(db_url) as admin:
        async with pg_faults.slow_for_its_content(admin):
            # max_attempts=2: a timeout is allowed more tries than a failure of the mail's own.
            async with running(make_listener(mailroom, dovecot, max_attempts=2)):
                await eventually(lambda: cursor_at(mailroom, 2), within=60)
            [parked] = await parked_inputs(mailroom.store)
            assert (parked.reason, parked.attempts) == (
                "statement_timeout",
                failures.STATEMENT_TIMEOUTS,
            )
            assert "statement timeout" in (parked.detail or "")
            assert await count(mailroom.store, TicketMessage) == 1
            flags = await dovecot.flags()
            assert "\\Seen" not in flags[1] and "\\Seen" in flags[2]  # kept unread
        # The cause fixed (the query made fast), an admin replays it.
        await replay(mailroom.settings, mailroom.store, parked.id)
    assert await count(mailroom.store, TicketMessage) == 2
    assert await parked_inputs(mailroom.store) == []


async def test_a_mail_parked_while_the_database_was_slow_comes_back_by_itself(
    db_url: str, mailroom: Mailroom, dovecot: Dovecot
) -> None:
    """Parked for statement timeouts, a customer's mail waited for an operator to notice it
    and run ``gateway inbound replay``; the gateway's sweep now replays it once the database
    answers normally again (its sweep's pipeline and clock: a minute on)."""
    await dovecot.append([mail("slow@example.org", text=f"written slowly {pg_faults.SLOW}")])
    pipeline = build_pipeline(mailroom.settings, mailroom.store, NeverMatches())
    sweep = ReplaySweep(
        mailroom.settings,
        mailroom.store,
        pipeline,
        bot=None,
        metrics=Metrics(),
        every=60,
        clock=lambda: utcnow() + timedelta(minutes=1),
    )
    async with pg_faults.admin(db_url) as admin:
        listener = make_listener(mailroom, dovecot, max_attempts=2)
        async with pg_faults.slow_for_its_content(admin), running(listener):
            await eventually(lambda: cursor_at(mailroom, 1), within=60)
        [parked] = await parked_inputs(mailroom.store)
        assert parked.reason == failures.TIMED_OUT
        [replayed] = (await sweep.sweep()).replayed
        assert replayed == parked.id
        assert await sweep.sweep() == Pass()
        await pipeline.drain()
    assert await count(mailroom.store, TicketMessage) == 1
    assert await parked_inputs(mailroom.store) == []


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(pg_faults.table_locked, id="55P03-lock-timeout"),
        pytest.param(pg_faults.connection_ended, id="57P01-connection-ended"),
        pytest.param(pg_faults.raising("40P01"), id="40P01-deadlock"),
        pytest.param(pg_faults.raising("08006"), id="08006-connection-failure"),
    ],
)
async def test_passing_postgres_failures_never_park_a_mail(
    db_url: str,
    mailroom: Mailroom,
    dovecot: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
    fault: pg_faults.Fault,
) -> None:
    """Guard: a statement timeout now counts toward parking; a lock timeout, a deadlock, a
    connection lost or a server restart still say nothing about the mail, however often."""
    await dovecot.append([mail("patient@example.org")])
    real = mailroom.processor.deliver
    tries: list[int] = []

    async def counted(parsed: Any, **lookup: Any) -> Any:
        tries.append(1)
        return await real(parsed, **lookup)

    monkeypatch.setattr(mailroom.processor, "deliver", counted)

    async def tried_past_every_allowance() -> bool:
        return len(tries) > failures.STATEMENT_TIMEOUTS + 1

    listener = make_listener(mailroom, dovecot, max_attempts=2)
    async with pg_faults.admin(db_url) as admin, running(listener):
        async with fault(admin):
            await eventually(tried_past_every_allowance, within=60)
            assert await count(mailroom.store, ParkedInbound) == 0
        await eventually(lambda: cursor_at(mailroom, 1), within=30)
    assert await count(mailroom.store, TicketMessage) == 1
    assert await count(mailroom.store, ParkedInbound) == 0
    assert "\\Seen" in (await dovecot.flags())[1]
