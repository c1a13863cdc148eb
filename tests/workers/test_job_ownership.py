"""A job delivers only the rows queued in it: a row it deferred, or one the relay queued again
in a newer job, is not sent by a retry of the old job. Two customers' rows in one job; the
first meets flood control (deferred ten minutes), the second a 502 (RQ retries the job)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from rq import Queue
from sqlalchemy import update

from channels.base import TransientChannelError
from gateway.models import OutboxStatus
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


async def one_deferred_one_to_retry(
    store: Store, fake: FakeBotAPI, settings: Settings, clock: Clock, redis: Redis
) -> tuple[list[int], str]:
    """The rows, queued in one job whose first try deferred row 1 and left row 2 to RQ."""
    await customers_write(store, clock, "4242", "4343")
    assert await OutboxRelay(store, redis, clock=clock).run_once() == 2
    ids = [r.id for r in await outbox(store)]
    job = job_id(*ids)
    fake.fail_next("sendMessage", 429, FLOOD, retry_after=600)
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    with pytest.raises(TransientChannelError):
        await deliver_many(ids, settings, job_id=job)
    deferred, retried = await outbox(store)
    assert (deferred.status, deferred.job_id) == (OutboxStatus.PENDING.value, None)
    assert deferred.due_at > utcnow() + timedelta(minutes=9)
    assert (retried.status, retried.job_id) == (OutboxStatus.QUEUED.value, job)
    assert fake.sent == []
    return ids, job


async def test_the_jobs_retry_does_not_send_the_row_it_deferred(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path)
    with redis_client(redis_url) as redis:
        ids, job = await one_deferred_one_to_retry(store, fake, settings, clock, redis)
        done = await deliver_many(ids, settings, job_id=job, last_try=True)  # RQ's last try
    assert done[ids[0]] == "not this job's: pending in no job"
    assert done[ids[1]] == "sent"
    assert [m["chat_id"] for m in fake.sent] == [4343]
    deferred, sent = await outbox(store)
    assert (deferred.status, sent.status) == (OutboxStatus.PENDING.value, OutboxStatus.SENT.value)


async def test_a_deferred_row_queued_again_is_sent_once_beside_the_old_jobs_retry(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path)
    with redis_client(redis_url) as redis:
        ids, job = await one_deferred_one_to_retry(store, fake, settings, clock, redis)
        clock.now = utcnow() + timedelta(minutes=11)  # due: the relay queues it in a new job
        assert await OutboxRelay(store, redis, clock=clock).run_once() == 1
        deferred = (await outbox(store))[0]
        assert (deferred.status, deferred.job_id) == (OutboxStatus.QUEUED.value, job_id(ids[0]))
        await asyncio.gather(
            deliver_many([ids[0]], settings, job_id=job_id(ids[0])),
            deliver_many(ids, settings, job_id=job),  # the old job's retry, at the same time
        )
    assert sorted(m["chat_id"] for m in fake.sent) == [4242, 4343]  # each once
    assert {r.status for r in await outbox(store)} == {OutboxStatus.SENT.value}


class RelayWhoseJobRunsAtOnce(OutboxRelay):
    """A worker that takes each job the moment Redis has it."""

    settings: Settings
    results: list[dict[int, str]]

    def _enqueue(self, jobs: Any) -> None:
        super()._enqueue(jobs)
        for _kind, ids in jobs:
            self.results.append(asyncio.run(deliver_many(ids, self.settings, job_id=job_id(*ids))))


async def test_a_job_taken_the_moment_it_is_enqueued_delivers_its_rows(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    """The relay enqueued before its transaction marked the rows queued in the job: a worker
    that took the job at once found them pending and left them, for lost_jobs, minutes on."""
    await customers_write(store, clock, "4242")
    with redis_client(redis_url) as redis:
        relay = RelayWhoseJobRunsAtOnce(store, redis, clock=clock)
        relay.settings, relay.results = telegram_settings(fake, db_url, redis_url, tmp_path), []
        assert await relay.run_once() == 1
    [row] = await outbox(store)
    assert relay.results == [{row.id: "sent"}]
    assert row.status == OutboxStatus.SENT.value


async def test_a_row_queued_before_rows_named_their_job_is_deferred_too(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path)
    await customers_write(store, clock, "4242")
    with redis_client(redis_url) as redis:
        assert await OutboxRelay(store, redis, clock=clock).run_once() == 1
    async with store.write() as session:  # as a relay before migration 0009 left it
        await session.execute(update(OutboxRow).values(job_id=None))
    fake.fail_next("sendMessage", 429, FLOOD, retry_after=600)
    [row] = await outbox(store)
    done = await deliver_many([row.id], settings, job_id=job_id(row.id))
    assert done[row.id] == "deferred: Telegram flood control"
    [row] = await outbox(store)
    assert row.status == OutboxStatus.PENDING.value
    assert row.due_at > utcnow() + timedelta(minutes=9)


class RelayWhoseReplyIsLost(OutboxRelay):
    """Redis takes the jobs, but their reply is lost (a timeout): the relay sees an error."""

    failed = False

    def _enqueue(self, jobs: Any) -> None:
        super()._enqueue(jobs)
        if not self.failed:
            self.failed = True
            raise RedisTimeout("Timeout reading from socket")


async def test_a_job_redis_got_despite_an_error_is_not_queued_twice(
    store: Store, db_url: str, redis_url: str, fake: FakeBotAPI, tmp_path: Path, clock: Clock
) -> None:
    """The relay set every row of a failed enqueue back to pending, so the next pass queued
    the row again under the same job id: RQ held it twice, and two workers sent it twice."""
    settings = telegram_settings(fake, db_url, redis_url, tmp_path)
    await customers_write(store, clock, "4242")
    with redis_client(redis_url) as redis:
        relay = RelayWhoseReplyIsLost(store, redis, clock=clock)
        with pytest.raises(RedisError):
            await relay.run_once()
        [row] = await outbox(store)
        assert (row.status, row.job_id) == (OutboxStatus.QUEUED.value, job_id(row.id))
        assert await relay.run_once() == 0
        assert Queue("notices", connection=redis).job_ids == [job_id(row.id)]
        await deliver_many([row.id], settings, job_id=job_id(row.id))
    assert [m["chat_id"] for m in fake.sent] == [4242]
