"""Queued rows whose RQ job is gone: a Redis restarted without persistence, a job RQ gave up on.
Real Redis, real RQ workers, the fake Bot API; the relay on the test's clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import JobStatus
from sqlalchemy import text, update

from gateway.models import OutboxStatus
from gateway.outbox import QUEUES
from gateway.store import Store
from gateway.store.tables import OutboxRow
from tests.channels.telegram.conftest import telegram_settings
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.conftest import RedisServer
from tests.factories import Clock, inbound, make_ingest
from tests.workers.conftest import Courier, WorkerProcess, outbox
from workers.lost_jobs import HANDED_OVER, LOST
from workers.relay import OutboxRelay, job_id

ROOT = Path(__file__).resolve().parents[2]
LATER = timedelta(minutes=6)  # past the age at which the relay looks at a queued row


@contextlib.contextmanager
def redis_client(url: str) -> Iterator[Redis]:
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        yield client
    finally:
        client.close()


async def customers_write(store: Store, clock: Clock, *chats: str) -> None:
    ingest = make_ingest(store, clock)
    for chat in chats:
        await ingest(inbound(external_user_id=chat, thread_key=chat))


async def test_rows_whose_jobs_a_redis_restart_lost_are_queued_again_and_sent_once(
    store: Store,
    db_url: str,
    redis_url: str,
    redis_server: RedisServer,
    fake: FakeBotAPI,
    tmp_path: Path,
    clock: Clock,
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path)
    await customers_write(store, clock, "4242", "4343")
    worker = WorkerProcess("simple", tmp_path)
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 2  # no worker yet: the job waits in Redis
        assert {r.job_id for r in await outbox(store)} == {job_id(1, 2)}
        redis_server.stop()  # Redis without persistence restarts: the job is gone
        redis_server.start()
        assert not await relay.recover()  # too young to be looked at
        clock.now += LATER
        recovered = await relay.recover()
        assert (recovered.requeued, recovered.parked) == (2, 0)
        rows = await outbox(store)
        assert {(r.status, r.last_error, r.job_id) for r in rows} == {
            (OutboxStatus.PENDING.value, LOST, None)
        }
        worker.start(settings)
        try:
            await worker.ready(redis)
            rows = await Courier(store, relay, worker).deliver(within=60)
        finally:
            worker.stop()
        assert not await relay.recover()  # sent rows are not looked at again
    assert {r.status for r in rows} == {OutboxStatus.SENT.value}
    assert sorted(m["chat_id"] for m in fake.sent) == [4242, 4343]  # each once


async def test_rows_of_a_job_still_waiting_in_redis_are_left_alone(
    store: Store, redis_url: str, clock: Clock
) -> None:
    await customers_write(store, clock, "4242")
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        clock.now += LATER
        assert not await relay.recover()
        [row] = await outbox(store)
        assert row.status == OutboxStatus.QUEUED.value
        assert Queue("notices", connection=redis).job_ids == [job_id(row.id)]  # not doubled


async def test_rows_of_a_job_rq_gave_up_on_are_parked_with_its_error(
    store: Store, redis_url: str, clock: Clock
) -> None:
    """A job that fails for a reason that is not a channel's (here its rows' database is
    unreachable) ends in RQ's failed registry after its retries; its rows are parked as
    failed (an admin sees them and can retry), and a row an attempt had handed to the peer
    is taken as sent."""
    await customers_write(store, clock, "4242", "4343")
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 2
        async with store.write() as session:  # an earlier attempt handed 4343's notice over
            await session.execute(
                update(OutboxRow).where(OutboxRow.id == 2).values(external_id="77")
            )
        [job] = [Queue(q, connection=redis).fetch_job(job_id(1, 2)) for q in ["notices"]]
        assert job is not None
        job.retries_left = 0  # its last try: a failure now is final
        job.save()
        await _fail_in_a_worker(redis_url)
        assert job.get_status() == JobStatus.FAILED
        clock.now += LATER
        recovered = await relay.recover()
        assert (recovered.parked, recovered.taken_as_sent, recovered.requeued) == (1, 1, 0)
        parked, handed = await outbox(store)
    assert parked.status == OutboxStatus.FAILED.value
    assert parked.last_error is not None
    assert parked.last_error.startswith("its delivery job failed: ")
    assert "ValidationError" in parked.last_error  # the job's own error (its settings')
    assert (handed.status, handed.last_error) == (OutboxStatus.SENT.value, HANDED_OVER)


async def _fail_in_a_worker(redis_url: str) -> None:
    """A burst worker whose jobs cannot open their database: each job fails (not a channel's
    error, so not a row's outcome)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATABASE_URL="nosuchdialect://nowhere", PYTHONPATH=str(ROOT))
    code = (
        "import sys; from redis import Redis; from rq import Queue, SimpleWorker;"
        "r = Redis.from_url(sys.argv[1]);"
        "SimpleWorker([Queue(q, connection=r) for q in sys.argv[2:]], connection=r)"
        ".work(burst=True)"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        redis_url,
        *QUEUES,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()


async def test_a_requeued_rows_due_time_is_stored_as_every_other_time(
    store: Store, redis_url: str, clock: Clock
) -> None:
    """SQLite compares times as text: a due time written in sqlite3's own form
    (``...+00:00``) sorted against the others by its characters, not its instant."""
    await customers_write(store, clock, "4242")
    with redis_client(redis_url) as redis:
        relay = OutboxRelay(store, redis, clock=clock)
        assert await relay.run_once() == 1
        redis.delete(f"rq:job:{job_id(1)}")
        clock.now += LATER
        assert (await relay.recover()).requeued == 1
    async with store.read() as session:
        due, created = (await session.execute(text("SELECT due_at, created_at FROM outbox"))).one()
    if store.is_sqlite:
        assert (due, created) == (
            clock.now.replace(tzinfo=None).isoformat(" ", "microseconds"),
            (clock.now - LATER).replace(tzinfo=None).isoformat(" ", "microseconds"),
        )
    else:
        assert due == clock.now
