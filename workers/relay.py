"""The outbox relay: moves due outbox rows to RQ queues (DESIGN.md invariant 3).

Rows are claimed inside a write transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single
writer on SQLite), so several relays may run side by side. The rows of one pass become RQ jobs of
up to ``per_job`` rows of one queue and channel, in order (``workers.jobs.deliver_rows``: one
job's overhead and one SMTP session for many mails), each with a deterministic id from its rows
(:func:`job_id`), named on each row. Rows are marked queued and committed before their jobs go
to Redis (a worker delivers only the rows queued in its job); with Redis down they are set back
to pending and the relay tries again on its next tick: sends are delayed, none lost. A job Redis
never got (a crash in between), lost (a restart without persistence) or RQ gave up on is found
by :meth:`OutboxRelay.recover` and its rows queued again or parked (``workers/lost_jobs.py``);
the job is idempotent by outbox id (each row is marked on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job
from sqlalchemy import func, select, update

from gateway.backoff import Backoff
from gateway.metrics import Metrics
from gateway.models import OutboxKind, OutboxStatus
from gateway.outbox import QUEUE_BY_KIND
from gateway.store import Store
from gateway.store.tables import OutboxRow
from gateway.store.types import utcnow
from gateway.tasks import running
from workers.lost_jobs import Recovered, recover_lost_jobs

log = logging.getLogger(__name__)

DELIVER = "workers.jobs.deliver_rows"
PER_JOB = 20
"""Rows per delivery job: enough to spread a job's overhead, few enough that a reply queued
behind a burst of notices on the same channel waits for little (and two workers share a burst)."""
RETRY_INTERVALS = [5, 30, 120, 600, 1800]
"""Seconds between tries of a failing delivery: capped, the last one parks it as failed."""


def job_id(*outbox_ids: int) -> str:
    """``outbox-<id>`` for one row; ``outbox-<first>-<last>-<count>`` for several."""
    first, *others = outbox_ids
    return f"outbox-{first}" if not others else f"outbox-{first}-{others[-1]}-{len(outbox_ids)}"


class OutboxRelay:
    """Moves due rows to RQ. ``await relay.run_once()`` relays one batch and says how many."""

    def __init__(
        self,
        store: Store,
        redis: Redis,
        *,
        batch: int = 200,
        per_job: int = PER_JOB,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.redis = redis
        self.batch = batch
        self.per_job = per_job
        self.metrics = metrics
        self.clock = clock
        self.queues = {kind: Queue(name, connection=redis) for kind, name in QUEUE_BY_KIND.items()}

    async def run_once(self) -> int:
        now = self.clock()
        due = (
            select(OutboxRow.id)
            .where(OutboxRow.status == OutboxStatus.PENDING.value, OutboxRow.due_at <= now)
            .limit(1)
        )
        async with self.store.read() as session:
            # Look before taking the write lock: most wake-ups find nothing (SQLite has one
            # writer, and ingest needs it more).
            if await session.scalar(due) is None:
                return 0
        async with self.store.write() as session:
            query = (
                select(OutboxRow)
                .where(OutboxRow.status == OutboxStatus.PENDING.value, OutboxRow.due_at <= now)
                .order_by(OutboxRow.due_at, OutboxRow.id)
                .limit(self.batch)
            )
            if not self.store.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.scalars(query)).all())
            if not rows:
                return 0
            jobs = self._jobs(rows)
            job_of = {outbox_id: job_id(*ids) for _kind, ids in jobs for outbox_id in ids}
            for row in rows:
                row.status = OutboxStatus.QUEUED.value
                row.queued_at = now
                row.job_id = job_of[row.id]
        # Committed first, enqueued second: a worker may take a job the moment it is in Redis,
        # and delivers only rows queued in it. A crash in between leaves rows queued in jobs
        # Redis never had: :meth:`recover` queues them again.
        try:
            # RQ's client is synchronous: enqueue off the event loop, in one pipeline.
            await asyncio.to_thread(self._enqueue, jobs)
        except asyncio.CancelledError:
            # The thread goes on and may still enqueue: the rows stay queued, and a job that
            # never arrived is found by :meth:`recover`.
            raise
        except Exception:
            # The jobs may have arrived all the same (a reply lost to a timeout): only rows
            # whose job Redis does not have go back to pending, or a second job would send
            # them again.
            await self._unqueue(job_of, now, await asyncio.to_thread(self._arrived, job_of))
            raise
        if self.metrics is not None:
            self.metrics.relayed.inc(len(rows))
        return len(rows)

    def _arrived(self, job_of: dict[int, str]) -> set[str]:
        """The jobs Redis has (none if it cannot say: it is down, so they did not arrive)."""
        names = sorted(set(job_of.values()))
        try:
            with self.redis.pipeline() as pipe:
                for name in names:
                    pipe.exists(Job.key_for(name))
                return {name for name, found in zip(names, pipe.execute(), strict=True) if found}
        except RedisError:
            return set()

    async def _unqueue(
        self, job_of: dict[int, str], queued_at: datetime, arrived: set[str]
    ) -> None:
        """Rows whose jobs did not reach Redis pending again (unless a worker took them)."""
        missing = [outbox_id for outbox_id, name in job_of.items() if name not in arrived]
        if not missing:
            return
        async with self.store.write() as session:
            await session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id.in_(missing),
                    OutboxRow.status == OutboxStatus.QUEUED.value,
                    OutboxRow.queued_at == queued_at,
                )
                .values(status=OutboxStatus.PENDING.value, job_id=None)
            )

    def _jobs(self, rows: list[OutboxRow]) -> list[tuple[OutboxKind, list[int]]]:
        """The rows in jobs: per queue and channel, in order, ``per_job`` at most.

        A contact's rows of one pass go together, on the queue of the most urgent of their
        kinds: on queues of their own a worker takes replies before notices, and a knowledge
        base's answer overtook the "we got your message" written before it."""
        urgency = list(QUEUE_BY_KIND)
        most_urgent: dict[tuple[int, str], OutboxKind] = {}
        for row in rows:
            key, kind = (row.contact_id, row.channel), OutboxKind(row.kind)
            most_urgent[key] = min(most_urgent.get(key, kind), kind, key=urgency.index)
        groups: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            kind = most_urgent[(row.contact_id, row.channel)]
            groups.setdefault((kind.value, row.channel), []).append(row.id)
        return [
            (OutboxKind(kind), ids[start : start + self.per_job])
            for (kind, _channel), ids in groups.items()
            for start in range(0, len(ids), self.per_job)
        ]

    def _enqueue(self, jobs: list[tuple[OutboxKind, list[int]]]) -> None:
        with self.redis.pipeline() as pipe:
            for kind, ids in jobs:
                self.queues[kind].enqueue_call(
                    DELIVER,
                    args=(ids,),
                    job_id=job_id(*ids),
                    retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                    result_ttl=3600,
                    failure_ttl=30 * 86400,
                    pipeline=pipe,
                )
            pipe.execute()

    async def recover(self) -> Recovered:
        """Queued rows whose job Redis no longer has, or RQ gave up on, settled
        (``workers/lost_jobs.py``)."""
        return await recover_lost_jobs(self.store, self.redis, self.clock())

    async def run(
        self, wake: asyncio.Event, *, poll_seconds: float = 1.0, recover_seconds: float = 60.0
    ) -> None:
        """Relay until cancelled: at once when woken, else every ``poll_seconds``; every
        ``recover_seconds``, look for rows whose job was lost."""
        backoff = Backoff(base=poll_seconds, cap=30.0)
        recover_at = time.monotonic()  # at start too: a restart after Redis lost its data
        while running():
            delay = poll_seconds
            try:
                if time.monotonic() >= recover_at:
                    recover_at = time.monotonic() + recover_seconds
                    await self.recover()
                while await self.run_once() == self.batch:
                    pass
                backoff.reset()
            except RedisError as exc:
                # Redis down: the rows wait in the outbox; try again later.
                delay = backoff.next()
                log.warning("outbox relay: redis unavailable, rows kept", extra={"error": str(exc)})
            except Exception:
                delay = backoff.next()
                log.exception("outbox relay failed; retrying")
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
            # Let a burst of commits finish so one pass relays them all.
            await asyncio.sleep(0.02)


async def outbox_depth(store: Store) -> dict[str, int]:
    """Outbox rows by status, for metrics and the console."""
    async with store.read() as session:
        rows = await session.execute(
            select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
        )
        return {status: count for status, count in rows.all()}
