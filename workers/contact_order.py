"""A contact's rows in order across jobs: a row waits while an earlier one of the same
contact, channel and kind is still owed in another job.

In one job a contact's rows go one after the other, and a failure holds back the later ones
(``workers/jobs.py``). Across jobs nothing did: a row deferred by Telegram's flood control, or
waiting for RQ's retry after a 502, was overtaken by the contact's next row, relayed a moment
later in a new job and sent at once ("2. Then press reset." before "1. Restart the router.").
Now a job looks first for earlier rows still owed (:func:`earlier_owed`); the contact's rows
after one go back to pending (:func:`wait_behind`), due when it is (a deferred row says when)
or a little later, and the relay queues them again then.

Kinds go on their own queues (replies before notices before surveys, by design), so across
jobs only rows of the same kind hold each other back; in a job, a contact's rows after a
waiting one wait too, whatever their kind (the relay puts a contact's rows of one pass in one
job, in the order they were owed). A pending row due later that no try has touched (a survey
scheduled for tomorrow) holds nothing back: it is not owed yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import OutboxStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow
from workers.outbound import LoadedRow
from workers.relay import RETRY_INTERVALS

log = logging.getLogger(__name__)

OWED = (OutboxStatus.QUEUED.value, OutboxStatus.PENDING.value)

IN_FLIGHT_WAIT = timedelta(seconds=2)
"""How long a row waits behind an earlier row just queued in a job no try has failed yet (it
is being sent by another worker, or waits its turn in Redis). Behind one queued longer it
waits half as long as that row has been queued (up to :data:`LONGEST_WAIT`): a job Redis lost
is found only after 5 minutes (``workers/lost_jobs.py``), and looking every 2 s till then
costs a relay pass and a job each time."""

LONGEST_WAIT = timedelta(seconds=30)
"""The longest a row waits before it looks again: an earlier row waiting for RQ's retry in half
an hour should not keep a reply back half an hour longer than it needs to."""


@dataclass(frozen=True, slots=True)
class Earlier:
    """An earlier row, still owed, that a job's row must follow."""

    outbox_id: int
    status: str
    due_at: datetime
    attempts: int
    queued_at: datetime | None

    def wait_until(self, now: datetime) -> datetime:
        """When to look again: when a deferred row is due, else soon (a queued row has no time
        of its own: RQ's retries wait longer after each try)."""
        if self.status == OutboxStatus.PENDING.value and self.due_at > now:
            return self.due_at
        if self.attempts == 0:
            # Only a row queued now has been queued for as long as queued_at says: one pending
            # again (an admin's retry, a lost job recovered) keeps the time of its last queueing.
            queued_for = timedelta()
            if self.status == OutboxStatus.QUEUED.value and self.queued_at is not None:
                queued_for = now - self.queued_at
            return now + min(max(IN_FLIGHT_WAIT, queued_for / 2), LONGEST_WAIT)
        interval = RETRY_INTERVALS[min(self.attempts, len(RETRY_INTERVALS)) - 1]
        return now + min(timedelta(seconds=interval), LONGEST_WAIT)


async def earlier_owed(
    session: AsyncSession, loaded: list[LoadedRow], now: datetime
) -> dict[int, Earlier]:
    """Per row of the job that must wait, the earliest row of its contact, channel and kind
    still owed outside the job (before it). The contact's rows in the job after a waiting one,
    of any kind, wait too (behind the same row)."""
    if not loaded:
        return {}
    mine = {item.row.id for item in loaded}
    first: dict[tuple[int, str, str], int] = {}
    for item in loaded:
        key = (item.row.contact_id, item.row.channel, item.row.kind)
        first[key] = min(first.get(key, item.row.id), item.row.id)
    owed_now: ColumnElement[bool] = or_(
        OutboxRow.status == OutboxStatus.QUEUED.value,
        OutboxRow.due_at <= now,
        OutboxRow.attempts > 0,
        OutboxRow.last_error.is_not(None),
    )
    found = await session.execute(
        select(
            OutboxRow.id,
            OutboxRow.contact_id,
            OutboxRow.channel,
            OutboxRow.kind,
            OutboxRow.status,
            OutboxRow.due_at,
            OutboxRow.attempts,
            OutboxRow.queued_at,
        )
        .where(
            OutboxRow.contact_id.in_({contact for contact, _, _ in first}),
            OutboxRow.status.in_(OWED),
            OutboxRow.id < max(mine),
            owed_now,
        )
        .order_by(OutboxRow.id)
    )
    earliest: dict[tuple[int, str, str], Earlier] = {}
    for outbox_id, contact, channel, kind, status, due_at, attempts, queued_at in found.all():
        key = (contact, channel, kind)
        if outbox_id in mine or key not in first or key in earliest:
            continue
        earliest[key] = Earlier(outbox_id, status, due_at, attempts, queued_at)
    waiting: dict[int, Earlier] = {}
    held: dict[int, Earlier] = {}  # per contact: what its first waiting row of the job waits for
    for item in sorted(loaded, key=lambda item: item.row.id):
        before = earliest.get((item.row.contact_id, item.row.channel, item.row.kind))
        if before is not None and before.outbox_id < item.row.id:
            waiting[item.row.id] = held.setdefault(item.row.contact_id, before)
        elif item.row.contact_id in held:
            # A later row of another kind in the job (the relay groups a contact's rows of a
            # pass): sent now, it would overtake the row waiting before it.
            waiting[item.row.id] = held[item.row.contact_id]
    return waiting


def still_owed_by(job_id: str | None) -> ColumnElement[bool]:
    """Rows the job ``job_id`` still owes: not settled, and queued in it (or queued before rows
    named their job). A job sets its rows pending again only under this condition: one
    settled meanwhile, or queued again in a newer job, keeps its state."""
    owed: ColumnElement[bool] = OutboxRow.status.in_(OWED)
    if job_id is None:
        return owed
    return and_(owed, or_(OutboxRow.job_id.is_(None), OutboxRow.job_id == job_id))


async def wait_behind(
    store: Store, waiting: dict[int, Earlier], now: datetime, job_id: str | None
) -> None:
    """The ``waiting`` rows pending again, each due when its earlier row's wait says: only rows
    still owed by this job (:func:`still_owed_by`)."""
    still_ours = still_owed_by(job_id)
    async with store.write() as session:
        for outbox_id, before in waiting.items():
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == outbox_id, still_ours)
                .values(
                    status=OutboxStatus.PENDING.value,
                    due_at=before.wait_until(now),
                    job_id=None,
                    last_error=f"waiting behind outbox {before.outbox_id}",
                )
            )
    log.info("deliveries wait behind earlier rows", extra={"rows": sorted(waiting)})
