"""Queued outbox rows whose RQ job is gone: queued again, or parked when the job failed.

The relay marks a row ``queued``, naming its job, and then puts the job in Redis; from then on
the job owes the message. A crash between the two leaves a job Redis never had; a Redis
restarted without persistence loses the job; and a job RQ gave up on (an error that is not a
channel's, such as a database outage through all its retries or a timeout) leaves its rows
queued: neither sent nor shown as failed. The relay runs :func:`recover_lost_jobs` every minute
or so (DESIGN.md invariant 3: Redis losing a job delays a send, loses none). For each row
queued longer than ``older_than``:

- its job is missing, or finished with the row still queued: the row is pending again, due now
  (the relay queues it in a new job; jobs are idempotent by outbox id);
- its job failed, was stopped or cancelled: the row is parked as failed with the job's error
  (``gateway outbox retry`` sends it again), or taken as sent if an attempt had handed it to
  the peer (its ``external_id``), as a retry of the job would have;
- its job is waiting, running or scheduled for a retry: nothing changes.

A row queued before jobs were named on rows (migration 0009) is taken as lost after a day.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from redis import Redis
from rq.job import Job, JobStatus
from sqlalchemy import Table, and_, bindparam, func, select, update

from gateway.models import OutboxStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow
from gateway.store.types import UTCDateTime

log = logging.getLogger(__name__)

OLDER_THAN = timedelta(minutes=5)
"""A row is looked at once queued this long: long past the relay's enqueue, which follows the
row's mark at once, and it keeps the look to rows a worker has not taken at once."""
UNNAMED_OLDER_THAN = timedelta(days=1)
"""Rows queued before migration 0009 name no job: lost once queued longer than any job lives
(RQ's retries end within an hour)."""

_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(: |(Error|Exception|Exit|Interrupt|Timeout)$)")
_DEAD = frozenset({JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
_ENDED = _DEAD | {JobStatus.FINISHED}
LOST = "its delivery job was lost from Redis; queued again"
HANDED_OVER = "handed to the peer by a job that then failed: taken as delivered"

_TABLE = cast(Table, OutboxRow.__table__)
_SETTLE = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("row_id"),
        _TABLE.c.status == OutboxStatus.QUEUED.value,
        _TABLE.c.queued_at == bindparam("was_queued_at"),
    )
    .values(
        status=bindparam("new_status"),
        due_at=func.coalesce(bindparam("new_due_at", type_=UTCDateTime()), _TABLE.c.due_at),
        job_id=bindparam("new_job_id"),
        last_error=bindparam("new_error"),
        sent_at=func.coalesce(bindparam("new_sent_at", type_=UTCDateTime()), _TABLE.c.sent_at),
    )
)
"""One row's new state, only if it is still queued from the same relay pass (another relay
may have settled it meanwhile, and queued it again)."""


@dataclass(frozen=True, slots=True)
class Recovered:
    requeued: int = 0
    parked: int = 0
    taken_as_sent: int = 0

    def __bool__(self) -> bool:
        return bool(self.requeued or self.parked or self.taken_as_sent)


@dataclass(frozen=True, slots=True)
class _Queued:
    id: int
    job_id: str | None
    queued_at: datetime | None  # never None here: the query asks for an age
    external_id: str | None


async def recover_lost_jobs(
    store: Store,
    redis: Redis,
    now: datetime,
    *,
    older_than: timedelta = OLDER_THAN,
    limit: int = 500,
) -> Recovered:
    """Settle up to ``limit`` queued rows whose job is gone (see the module doc)."""
    named = and_(OutboxRow.job_id.is_not(None), OutboxRow.queued_at <= now - older_than)
    unnamed = and_(OutboxRow.job_id.is_(None), OutboxRow.queued_at <= now - UNNAMED_OLDER_THAN)
    query = (
        select(OutboxRow.id, OutboxRow.job_id, OutboxRow.queued_at, OutboxRow.external_id)
        .where(OutboxRow.status == OutboxStatus.QUEUED.value, named | unnamed)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    async with store.read() as session:
        rows = [_Queued(*row) for row in (await session.execute(query)).all()]
    if not rows:
        return Recovered()
    named_jobs = sorted({row.job_id for row in rows if row.job_id is not None})
    # RQ's client is synchronous; the rows are read outside a transaction and written
    # under guards, so no lock is held over this round trip.
    states = await asyncio.to_thread(_job_states, redis, named_jobs)
    changes: list[dict[str, object]] = []
    counts = {"requeued": 0, "parked": 0, "taken_as_sent": 0}
    for row in rows:
        state = states.get(row.job_id) if row.job_id is not None else None
        if state is not None and state[0] not in _ENDED:
            continue  # waiting, running or scheduled for a retry
        if state is not None and state[0] in _DEAD:
            if row.external_id is not None:
                change = _change(row, OutboxStatus.SENT, now, HANDED_OVER, sent=True)
                counts["taken_as_sent"] += 1
            else:
                change = _change(row, OutboxStatus.FAILED, now, state[1])
                counts["parked"] += 1
        else:
            change = _change(row, OutboxStatus.PENDING, now, LOST)
            counts["requeued"] += 1
        changes.append(change)
    if changes:
        async with store.write() as session:
            await session.execute(_SETTLE, changes)
        log.warning(
            "outbox rows whose delivery job was gone",
            extra={**counts, "jobs": named_jobs[:10]},
        )
    return Recovered(**counts)


def _change(
    row: _Queued, status: OutboxStatus, now: datetime, error: str, *, sent: bool = False
) -> dict[str, object]:
    return {
        "row_id": row.id,
        "was_queued_at": row.queued_at,
        "new_status": status.value,
        "new_due_at": now if status is OutboxStatus.PENDING else None,
        "new_job_id": row.job_id if status is not OutboxStatus.PENDING else None,
        "new_error": error,
        "new_sent_at": now if sent else None,
    }


def _job_states(redis: Redis, job_ids: Iterable[str]) -> dict[str, tuple[JobStatus, str]]:
    """Each job still in Redis: its status, and for a failed one why (its error's last line)."""
    ids = list(job_ids)
    states: dict[str, tuple[JobStatus, str]] = {}
    for job_id, job in zip(ids, Job.fetch_many(ids, connection=redis), strict=True):
        if job is None:
            continue
        status = job.get_status(refresh=False)
        reason = ""
        if status in _DEAD:
            result = job.latest_result()
            reason = (
                f"its delivery job {status.value}: {_raised(result.exc_string if result else None)}"
            )
        states[job_id] = (status, reason)
    return states


def _raised(traceback: str | None) -> str:
    """A traceback's last exception line (``module.Error: message``; details may follow it)."""
    lines = [line for line in (traceback or "").splitlines() if _EXCEPTION_LINE.match(line)]
    return lines[-1] if lines else "no error kept"
