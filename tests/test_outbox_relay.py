"""The outbox relay and the delivery job, against a real Redis and real RQ worker processes."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select

from gateway.models import Channel, OutboxStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow
from tests.conftest import SECRET, RedisServer
from tests.factories import inbound, make_ingest
from tests.worker_harness import read_record
from workers.relay import OutboxRelay, job_id
from workers.sla_sweep import QUEUE as SLA_QUEUE

ROOT = Path(__file__).resolve().parent.parent


async def run_worker(
    db_url: str,
    redis_url: str,
    record: Path,
    *,
    forking: bool = False,
    fail: str | None = None,
    no_sender: str | None = None,
) -> None:
    """A burst worker in its own process, configured from the environment like a real one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATABASE_URL=db_url, GATEWAY_REDIS_URL=redis_url, GATEWAY_SECRET_KEY=SECRET)
    args = [sys.executable, "-m", "tests.worker_harness", str(record)]
    if forking:
        args.append("--forking")
    if fail:
        args += ["--fail", fail]
    if no_sender:
        args += ["--no-sender", no_sender]
    process = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()


async def statuses(store: Store) -> list[str]:
    async with store.read() as session:
        return list((await session.scalars(select(OutboxRow.status).order_by(OutboxRow.id))).all())


async def row(store: Store, outbox_id: int) -> OutboxRow:
    async with store.read() as session:
        return await session.get_one(OutboxRow, outbox_id)


async def test_relay_moves_due_rows_to_their_queue_once(store: Store, redis_url: str) -> None:
    ingest = make_ingest(store)
    await ingest(inbound(external_user_id="a", thread_key="a"))
    await ingest(inbound(external_user_id="b", thread_key="b"))
    redis = Redis.from_url(redis_url)
    relay = OutboxRelay(store, redis)
    assert await relay.run_once() == 2
    assert await relay.run_once() == 0
    notices = Queue("notices", connection=redis)
    assert notices.job_ids == [job_id(1, 2)]  # one job for both (same queue and channel)
    assert await statuses(store) == ["queued", "queued"]
    redis.close()


async def test_relay_groups_rows_per_channel_into_jobs_of_at_most_per_job(
    store: Store, redis_url: str
) -> None:
    ingest = make_ingest(store)
    telegram, webchat = Channel.TELEGRAM, Channel.WEBCHAT
    channels = [telegram, telegram, webchat, telegram, webchat]
    for n, channel in enumerate(channels):
        await ingest(inbound(channel=channel, external_user_id=f"u{n}", thread_key=f"u{n}"))
    redis = Redis.from_url(redis_url)
    assert await OutboxRelay(store, redis, per_job=2).run_once() == 5
    notices = Queue("notices", connection=redis)
    assert notices.job_ids == [job_id(1, 2), job_id(4), job_id(3, 5)]
    jobs = [notices.fetch_job(i) for i in notices.job_ids]
    assert [job.args for job in jobs if job is not None] == [([1, 2],), ([4],), ([3, 5],)]
    redis.close()


async def test_with_redis_down_rows_wait_and_then_go_out_once(
    store: Store, redis_server: RedisServer, redis_url: str
) -> None:
    await make_ingest(store)(inbound())
    redis = Redis.from_url(redis_url, socket_connect_timeout=1)
    relay = OutboxRelay(store, redis)
    redis_server.stop()
    task = asyncio.create_task(relay.run(asyncio.Event(), poll_seconds=0.05))
    await asyncio.sleep(0.5)
    # Each try marks the row queued and, its enqueue refused, pending again: between tries the
    # row is back to pending (nothing lost, nothing left marked).
    for _ in range(100):
        if await statuses(store) == ["pending"]:
            break
        await asyncio.sleep(0.01)
    assert await statuses(store) == ["pending"]
    redis_server.start()
    notices = Queue("notices", connection=redis)
    # The relay commits the rows queued before it enqueues their job: wait for both.
    for _ in range(200):
        if await statuses(store) == ["queued"] and notices.job_ids == [job_id(1)]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a few more passes: still one job, the row not queued again
    task.cancel()
    assert await statuses(store) == ["queued"]
    assert notices.job_ids == [job_id(1)]
    redis.close()


@pytest.mark.parametrize("forking", [False, True], ids=["simple-worker", "forking-worker"])
async def test_a_job_delivers_once_even_when_run_twice(
    store: Store, db_url: str, redis_url: str, tmp_path: Path, forking: bool
) -> None:
    record = tmp_path / "sent.jsonl"
    result = await make_ingest(store)(inbound(locale="en"))
    redis = Redis.from_url(redis_url)
    await OutboxRelay(store, redis).run_once()
    await run_worker(db_url, redis_url, record, forking=forking)
    assert await statuses(store) == ["sent"]
    [sent] = read_record(record)
    assert (sent.channel, sent.recipient, sent.outbox_id) == (Channel.TELEGRAM, "user-1", 1)
    assert result.ticket.number in sent.text and "24 hours" in sent.text
    # The same job again (a retry after a crash before RQ recorded success): nothing new sent.
    Queue("notices", connection=redis).enqueue_call("workers.jobs.deliver", args=(1,))
    await run_worker(db_url, redis_url, record, forking=forking)
    assert len(read_record(record)) == 1
    redis.close()


async def test_a_channel_without_a_sender_parks_the_row_as_failed_with_the_reason(
    store: Store, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    await make_ingest(store)(inbound(channel=Channel.WEBCHAT))
    redis = Redis.from_url(redis_url)
    await OutboxRelay(store, redis).run_once()
    await run_worker(db_url, redis_url, tmp_path / "sent.jsonl", no_sender="webchat")
    parked = await row(store, 1)
    assert parked.status == OutboxStatus.FAILED
    assert parked.last_error == "no sender configured for channel webchat"
    redis.close()


async def test_a_permanent_channel_error_parks_the_row(
    store: Store, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    await make_ingest(store)(inbound())
    redis = Redis.from_url(redis_url)
    await OutboxRelay(store, redis).run_once()
    await run_worker(db_url, redis_url, tmp_path / "sent.jsonl", fail="chat not found")
    parked = await row(store, 1)
    assert (parked.status, parked.last_error, parked.attempts) == ("failed", "chat not found", 1)
    assert read_record(tmp_path / "sent.jsonl") == []
    redis.close()


async def test_a_parked_delivery_is_listed_and_sent_again_once_retried(
    store: Store, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    from tests.cli_runner import environment, gateway

    await make_ingest(store)(inbound())
    redis = Redis.from_url(redis_url)
    await OutboxRelay(store, redis).run_once()
    record = tmp_path / "sent.jsonl"
    await run_worker(db_url, redis_url, record, fail="chat not found")
    env = environment(GATEWAY_DATABASE_URL=db_url, GATEWAY_REDIS_URL=redis_url)
    listed = await asyncio.to_thread(gateway, "outbox", "failed", env=env, cwd=tmp_path)
    assert listed.stdout.split("\t")[:3] == ["1", "telegram", "ticket_received"]
    assert listed.stdout.strip().endswith("chat not found")
    retried = await asyncio.to_thread(gateway, "outbox", "retry", "1", env=env, cwd=tmp_path)
    assert retried.returncode == 0
    again = await asyncio.to_thread(gateway, "outbox", "retry", "1", env=env, cwd=tmp_path)
    assert again.returncode == 1  # it is no longer parked
    assert await OutboxRelay(store, redis).run_once() == 1
    await run_worker(db_url, redis_url, record)
    assert await statuses(store) == ["sent"]
    assert len(read_record(record)) == 1
    redis.close()


async def test_the_sla_sweep_runs_as_an_rq_job_in_a_worker(
    store: Store, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    from datetime import timedelta

    from gateway.routing import Router
    from gateway.store.tables import Ticket
    from knowledge_base.base import NeverMatches
    from tests.factories import Clock

    clock = Clock()
    stored = await make_ingest(store, clock)(inbound())
    await Router(store, NeverMatches(), clock=clock).route(stored.message.id)
    async with store.write() as session:  # its first response was due an hour ago
        ticket = await session.get_one(Ticket, stored.ticket.id)
        ticket.first_response_due_at = datetime.now(UTC) - timedelta(hours=1)
    redis = Redis.from_url(redis_url)
    Queue(SLA_QUEUE, connection=redis).enqueue_call("workers.sla_sweep.sla_sweep_job")
    await run_worker(db_url, redis_url, tmp_path / "sent.jsonl")
    async with store.read() as session:
        assert (await session.get_one(Ticket, stored.ticket.id)).overdue_at is not None
    redis.close()
