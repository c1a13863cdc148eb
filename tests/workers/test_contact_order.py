"""A contact's rows keep their order across jobs: a row relayed while an earlier one of the same
contact waits (deferred by flood control, or queued for RQ's retry) follows it instead of
overtaking it. Real Redis, the fake Bot API, both databases; the relay on the test's clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from rq.job import Job
from sqlalchemy import update

from channels.base import TransientChannelError
from gateway.models import Channel, OutboxKind, OutboxStatus
from gateway.outbox import add_outbox
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import OutboxRow
from gateway.store.types import utcnow
from tests.channels.telegram.conftest import telegram_settings
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.factories import Clock
from tests.workers.conftest import outbox
from tests.workers.test_lost_jobs import customers_write, redis_client
from workers.jobs import deliver_many
from workers.relay import OutboxRelay, job_id

FLOOD = "Too Many Requests: retry after 600"


async def a_customer_wrote(store: Store, clock: Clock, settings: Settings) -> Settings:
    """Customer 4242 wrote in, on the jobs' clock (rows due as the jobs see it): outbox row 1
    is "we got your message"."""
    clock.now = utcnow()
    await customers_write(store, clock, "4242")
    return settings


async def owe_progress(
    store: Store,
    clock: Clock,
    text: str,
    *,
    due_in: timedelta | None = None,
    kind: OutboxKind = OutboxKind.NOTICE,
) -> int:
    """A progress notice (or a row of ``kind`` saying as much) to the first customer, after
    what they are owed so far."""
    [first, *_] = await outbox(store)
    now = clock.now
    async with store.write() as session:
        row = add_outbox(
            session,
            kind=kind,
            template="progress",
            channel=Channel.TELEGRAM,
            contact_id=first.contact_id,
            ticket_id=first.ticket_id,
            now=now,
            payload={"text": text},
            due_at=now + due_in if due_in else None,
        )
        await session.flush()
        return row.id


async def test_a_row_relayed_while_an_earlier_one_is_deferred_follows_it(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    settings = await a_customer_wrote(
        store, clock, telegram_settings(fake, db_url, redis_url, tmp_path)
    )
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        fake.fail_next("sendMessage", 429, FLOOD, retry_after=600)
        done = await deliver_many([1], settings, job_id=job_id(1))
        assert done == {1: "deferred: Telegram flood control"}
        second = await owe_progress(store, clock, "Restart the router.")
        assert await relay.run_once() == 1  # the new row alone: the first is due in 10 minutes
        done = await deliver_many([second], settings, job_id=job_id(second))
        assert done == {second: "waiting behind outbox 1"}
        assert fake.sent == []
        deferred, waiting = await outbox(store)
        assert (waiting.status, waiting.job_id) == (OutboxStatus.PENDING.value, None)
        assert waiting.due_at == deferred.due_at
        assert waiting.attempts == 0  # waiting is not a try

        clock.now = utcnow() + timedelta(minutes=11)
        assert await relay.run_once() == 2
        done = await deliver_many([1, second], settings, job_id=job_id(1, second))
    assert done == {1: "sent", second: "sent"}
    texts = [m["text"] for m in fake.sent]
    assert len(texts) == 2 and "Restart the router." in texts[1]


async def test_a_row_relayed_while_an_earlier_one_waits_for_rqs_retry_follows_it(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    settings = await a_customer_wrote(
        store, clock, telegram_settings(fake, db_url, redis_url, tmp_path)
    )
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        fake.fail_next("sendMessage", 502, "Bad Gateway")
        with pytest.raises(TransientChannelError):
            await deliver_many([1], settings, job_id=job_id(1))
        second = await owe_progress(store, clock, "Then press reset.")
        assert await relay.run_once() == 1
        done = await deliver_many([second], settings, job_id=job_id(second))
        assert done == {second: "waiting behind outbox 1"}
        [retried, waiting] = await outbox(store)
        assert (retried.status, waiting.status) == ("queued", "pending")
        assert waiting.due_at > utcnow()  # looks again after RQ's first retry interval

        assert await deliver_many([1], settings, job_id=job_id(1)) == {1: "sent"}  # RQ's retry
        clock.now = utcnow() + timedelta(seconds=10)
        assert await relay.run_once() == 1
        done = await deliver_many([second], settings, job_id=job_id(second))
    assert done == {second: "sent"}
    texts = [m["text"] for m in fake.sent]
    assert len(texts) == 2 and "Then press reset." in texts[1]


async def test_a_row_scheduled_for_later_holds_nothing_back(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    settings = await a_customer_wrote(
        store, clock, telegram_settings(fake, db_url, redis_url, tmp_path)
    )
    assert await deliver_many([1], settings) == {1: "sent"}
    await owe_progress(store, clock, "Tomorrow's reminder.", due_in=timedelta(days=1))
    now = await owe_progress(store, clock, "Fixed.")
    with redis_client(redis_url) as redis:
        assert await OutboxRelay(store, redis, clock=clock).run_once() == 1
    assert await deliver_many([now], settings, job_id=job_id(now)) == {now: "sent"}
    assert "Fixed." in fake.sent[-1]["text"]


async def test_a_contacts_later_rows_of_any_kind_in_the_job_wait_with_the_first(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    """The relay puts a contact's notice and reply of one pass in one job, the notice first:
    when the notice waited behind an earlier deferred notice, the reply went at once."""
    settings = await a_customer_wrote(
        store, clock, telegram_settings(fake, db_url, redis_url, tmp_path)
    )
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        fake.fail_next("sendMessage", 429, FLOOD, retry_after=600)
        await deliver_many([1], settings, job_id=job_id(1))
        ack = await owe_progress(store, clock, "We got your message.")
        answer = await owe_progress(store, clock, "The answer.", kind=OutboxKind.REPLY)
        assert await relay.run_once() == 2
        done = await deliver_many([ack, answer], settings, job_id=job_id(ack, answer))
    assert done == {ack: "waiting behind outbox 1", answer: "waiting behind outbox 1"}
    assert fake.sent == []


async def test_a_row_recovered_from_a_lost_job_goes_before_the_row_that_waited_behind_it(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    """Row 1's job was lost; row 2 waited behind it. Recovered, row 1 is due now, after row
    2's due time, and the relay (by due time) put them in one job as [2, 1]."""
    settings = await a_customer_wrote(
        store, clock, telegram_settings(fake, db_url, redis_url, tmp_path)
    )
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        Job.fetch(job_id(1), connection=redis).delete()  # Redis lost the job
        second = await owe_progress(store, clock, "2. Then press reset.")
        assert await relay.run_once() == 1
        done = await deliver_many([second], settings, job_id=job_id(second))
        assert done == {second: "waiting behind outbox 1"}
        clock.now = utcnow() + timedelta(minutes=6)
        assert (await relay.recover()).requeued == 1
        assert await relay.run_once() == 2
        [name] = {r.job_id for r in await outbox(store)}
        assert name is not None
        ids = Job.fetch(name, connection=redis).args[0]
        assert ids == [second, 1]  # by due time
        done = await deliver_many(ids, settings, job_id=name)
    assert done == {1: "sent", second: "sent"}
    assert "2. Then press reset." in fake.sent[1]["text"]


async def test_a_row_behind_one_long_queued_looks_again_less_often(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    """Behind a row whose job Redis lost, a row looked again every 2 s (a relay pass and a job
    each) until the lost job was found, 5 minutes on: 150 jobs for nothing. The longer the
    earlier row has been queued, the longer the wait, up to 30 s."""
    settings = await a_customer_wrote(
        store, clock, telegram_settings(fake, db_url, redis_url, tmp_path)
    )
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        Job.fetch(job_id(1), connection=redis).delete()  # Redis lost the job
        async with store.write() as session:  # four minutes ago
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == 1)
                .values(queued_at=utcnow() - timedelta(minutes=4))
            )
        second = await owe_progress(store, clock, "2. Then press reset.")
        assert await relay.run_once() == 1
        done = await deliver_many([second], settings, job_id=job_id(second))
    assert done == {second: "waiting behind outbox 1"}
    [_, waiting] = await outbox(store)
    assert timedelta(seconds=20) < waiting.due_at - utcnow() <= timedelta(seconds=30)


async def test_a_row_behind_one_just_queued_looks_again_soon(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    """The earlier row is being sent by another worker, or waits its turn in Redis."""
    settings = await a_customer_wrote(
        store, clock, telegram_settings(fake, db_url, redis_url, tmp_path)
    )
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        second = await owe_progress(store, clock, "2. Then press reset.")
        assert await relay.run_once() == 1
        done = await deliver_many([second], settings, job_id=job_id(second))
    assert done == {second: "waiting behind outbox 1"}
    [_, waiting] = await outbox(store)
    assert waiting.due_at - utcnow() <= timedelta(seconds=3)
