"""RQ jobs. They take ids, never objects, and are idempotent by outbox id.

RQ runs jobs synchronously. Each worker process keeps one event loop, its settings and its store
between jobs (:class:`_Process`): with ``SimpleWorker`` every job reuses them; a forking worker's
work horse makes its own and loses them when it exits (nothing loop-bound crosses a fork).

A job delivers several rows (the relay groups due rows per queue and channel, in order), each
marked on its own: a row marked sent is never sent again, and a sender that can tell when a
message passes to the peer for good (``channels.base.HandsOver``: SMTP, just before the end of
DATA) has that moment recorded first (the row's ``external_id``), so a retry after the worker
died waiting for the peer's answer takes the message as delivered instead of sending it twice.
The marks of a job share commits (``workers/marks.py``): a row's "sent" goes with the next row's
hand-over, so a batch of mails costs one commit per mail; only one send of a job at a time is
between its hand-over mark and its end (the marks' baton), the others go on beside it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from rq import get_current_job
from sqlalchemy import update

from channels.base import (
    ChannelError,
    HandsOver,
    KeepsConnections,
    OutboundSender,
    RecipientUnreachable,
    TransientChannelError,
)
from channels.registry import SENDERS
from gateway.models import (
    Channel,
    OutboxStatus,
)
from gateway.outbox import agents_words, show_outcome
from gateway.outbox_fallback import hand_to_email
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import OutboxRow
from gateway.store.types import utcnow
from workers.contact_order import earlier_owed, still_owed_by, wait_behind
from workers.marks import Marks, Outcome, marks_for
from workers.outbound import LoadedRow, build_message, load_rows
from workers.relay import RETRY_INTERVALS

log = logging.getLogger(__name__)

IN_FLIGHT = 8
"""Sends a job has under way at once (different contacts; one contact's rows go in order): their
round trips overlap and their marks share commits.

A sender that hands over (SMTP, Telegram) commits its mark just before the message goes, and a
message marked but not yet sent is lost if the work horse dies then. Several sends resuming from
one shared commit once left several messages in that window (a kill lost four of five mails on
PostgreSQL); now each hand-over has a commit of its own and holds the job's baton until its send
ends (``workers/marks.py``), so at most one message is ever in that window, while the other
sends' round trips go on."""

HANDED_OVER = "handed to the peer by an attempt that died before its answer: taken as delivered"


@runtime_checkable
class PreparesBatch(Protocol):
    """A sender that looks at a job's rows before sending them (the email cap's counts)."""

    async def prepare(self, outbox_ids: list[int]) -> None: ...


class _Process:
    """What one worker process keeps between jobs."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.settings = Settings()
        self.store = Store(self.settings.database_url)
        self.senders = Senders(self.settings)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.senders.aclose())
            self.loop.run_until_complete(self.store.close())
        finally:
            self.loop.close()


class Senders:
    """One sender per channel, kept open between deliveries where the sender can."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._made: dict[Channel, OutboundSender] = {}

    async def get(self, channel: Channel) -> OutboundSender | None:
        sender = self._made.get(channel)
        if sender is None:
            factory = SENDERS.get(channel)
            if factory is None:
                return None
            sender = factory(self.settings)
            if isinstance(sender, KeepsConnections):
                await sender.open()
            self._made[channel] = sender
        return sender

    async def aclose(self) -> None:
        made, self._made = list(self._made.values()), {}
        for sender in made:
            if isinstance(sender, KeepsConnections):
                await sender.aclose()


_process: _Process | None = None


def _this_process() -> _Process:
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = _Process()
    return _process


def deliver(outbox_id: int) -> str:
    """Deliver one outbox row (jobs enqueued before rows were batched). See :func:`deliver_rows`."""
    return deliver_rows([outbox_id])


def deliver_rows(outbox_ids: list[int]) -> str:
    """Deliver outbox rows on their channels, in order; each row is marked on its own. Returns
    what happened to each, for the job's result. A transient failure of any row raises after
    the others are done, so RQ retries the job; its retry skips the rows already sent."""
    job = get_current_job()
    # RQ counts retries down before each retry: none left means this is the last try.
    last_try = job is None or not job.retries_left
    process = _this_process()
    try:
        done = process.loop.run_until_complete(
            deliver_many(
                outbox_ids,
                process.settings,
                store=process.store,
                senders=process.senders,
                last_try=last_try,
                job_id=job.id if job is not None else None,
            )
        )
    except TransientChannelError:
        raise  # RQ retries it with backoff
    except BaseException:
        # A timeout or a crash may leave the loop mid-task: the next job starts afresh.
        global _process
        _process = None
        process.close()
        raise
    return "; ".join(f"{outbox_id}: {result}" for outbox_id, result in done.items())


async def deliver_async(
    outbox_id: int,
    settings: Settings,
    *,
    store: Store | None = None,
    senders: Senders | None = None,
    last_try: bool = False,
) -> str:
    """One row's delivery (see :func:`deliver_many`); returns what happened to it."""
    done = await deliver_many(
        [outbox_id], settings, store=store, senders=senders, last_try=last_try
    )
    return done[outbox_id]


class BatchTransientError(TransientChannelError):
    """Some rows of a job failed in a way worth retrying; the others are marked."""


async def deliver_many(
    outbox_ids: list[int],
    settings: Settings,
    *,
    store: Store | None = None,
    senders: Senders | None = None,
    last_try: bool = False,
    job_id: str | None = None,
) -> dict[int, str]:
    """The job's body. A transient failure raises (for RQ to retry) unless ``last_try``, when
    the row is parked as failed with the reason instead. Without ``store`` and ``senders`` it
    makes its own and closes them.

    ``job_id``: the RQ job running it. A row it delivers must be queued in that job (the
    relay names it on the row): a row the job deferred, or the relay queued again in a newer
    job, is the newer one's, and a retry of this job sending it too sent it twice."""
    own_store, own_senders = store is None, senders is None
    store = store or Store(settings.database_url)
    senders = senders or Senders(settings)
    done: dict[int, str] = {}
    transient: list[TransientChannelError] = []
    try:
        now = utcnow()
        async with store.read() as session:
            loaded = await load_rows(session, outbox_ids)
            owed = [item for item in loaded if _owed_here(item.row, job_id)]
            behind = await earlier_owed(session, owed, now)
        if behind:
            # An earlier row of the contact is still owed in another job: these follow it.
            await wait_behind(store, behind, now, job_id)
            for outbox_id, before in behind.items():
                done[outbox_id] = f"waiting behind outbox {before.outbox_id}"
            loaded = [item for item in loaded if item.row.id not in behind]
        async with marks_for(store) as marks:
            await _prepare(senders, loaded)

            async def deliver_in_order(items: list[LoadedRow]) -> None:
                for n, item in enumerate(items):  # one contact's rows, one after the other
                    async with in_flight:
                        try:
                            done[item.row.id] = await _deliver_one(
                                item, settings, senders, marks, last_try, job_id
                            )
                            if done[item.row.id].startswith("failed"):
                                await _tell_the_desk(marks, item.row)
                        except Deferred as deferred:
                            # The peer named when to come back: the contact's rows wait till
                            # then, in order, as pending rows the relay queues when due.
                            waiting = [i.row.id for i in items[n + 1 :]]
                            await _defer(marks, item.row, waiting, deferred, job_id)
                            done[item.row.id] = f"deferred: {deferred.cause}"
                            for outbox_id in waiting:
                                done[outbox_id] = f"deferred after outbox {item.row.id}"
                            return
                        except TransientChannelError as exc:
                            done[item.row.id] = f"will retry: {exc}"
                            transient.append(exc)
                            # The contact's later rows wait for the retry: sent now, they
                            # would arrive before this one.
                            for later in items[n + 1 :]:
                                done[later.row.id] = f"will retry after outbox {item.row.id}"
                            return

            in_flight = asyncio.Semaphore(IN_FLIGHT)
            by_contact: dict[int, list[LoadedRow]] = {}
            for item in sorted(loaded, key=lambda item: item.row.id):
                # In the order they were owed: the relay orders a pass by when rows are due,
                # and a row recovered from a lost job, due now, came after one owed later.
                by_contact.setdefault(item.row.contact_id, []).append(item)
            try:
                async with asyncio.TaskGroup() as group:
                    for items in by_contact.values():
                        group.create_task(deliver_in_order(items))
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None  # what broke, not a group of one
    finally:
        if own_senders:
            await senders.aclose()
        if own_store:
            await store.close()
    for outbox_id in outbox_ids:
        done.setdefault(outbox_id, "no such row")
    if transient:
        if len(outbox_ids) == 1:
            raise transient[0]
        first = transient[0]
        raise BatchTransientError(
            f"{len(transient)} of {len(outbox_ids)} rows to retry, first: {first}",
            retry_after=first.retry_after,
        ) from first
    return done


async def _prepare(senders: Senders, loaded: list[LoadedRow]) -> None:
    """Let each sender look at its rows first (the email cap: one query for the batch)."""
    by_channel: dict[Channel, list[int]] = {}
    for item in loaded:
        by_channel.setdefault(Channel(item.row.channel), []).append(item.row.id)
    for channel, ids in by_channel.items():
        sender = await senders.get(channel)
        if isinstance(sender, PreparesBatch):
            await sender.prepare(ids)


async def _deliver_one(
    item: LoadedRow,
    settings: Settings,
    senders: Senders,
    marks: Marks,
    last_try: bool,
    job_id: str | None,
) -> str:
    row = item.row
    outbox_id = row.id

    def outcome(status: OutboxStatus | None, error: str | None, sent_as: str | None = None) -> None:
        marks.note(
            Outcome(outbox_id, status, error, sent_as),
            status_now=row.status,
            external_id_now=row.external_id,
        )

    if row.status == OutboxStatus.SENT.value:
        return "already sent"
    if row.status == OutboxStatus.FAILED.value:
        return "already failed"  # parked by an earlier try of this job ("outbox retry" requeues)
    if job_id is not None and not _ours(row, job_id):
        return f"not this job's: {row.status} in {row.job_id or 'no job'}"
    if row.external_id is not None:
        # An earlier attempt handed the message over and died before marking it.
        outcome(OutboxStatus.SENT, HANDED_OVER)
        log.warning("delivery taken as done", extra={"outbox_id": outbox_id})
        return "already handed over"
    outbound = build_message(item, settings)
    if outbound is None:
        return await _unreachable(
            item, marks, "the contact has no reachable identity on this channel", outcome
        )
    sender = await senders.get(Channel(row.channel))
    if sender is None:
        reason = f"no sender configured for channel {row.channel}"
        outcome(OutboxStatus.FAILED, reason)
        return f"failed: {reason}"
    try:
        if isinstance(sender, HandsOver):
            async with marks.handing_over(outbox_id) as handover:
                receipt = await sender.send_handing_over(outbound, handover)
        else:
            receipt = await sender.send(outbound)
    except TransientChannelError as exc:
        delay = exc.retry_after or 0.0
        if not last_try and delay > RETRY_INTERVALS[0] and row.attempts < DEFER_AT_MOST:
            raise Deferred(exc, utcnow() + timedelta(seconds=delay)) from exc
        outcome(OutboxStatus.FAILED if last_try else None, str(exc))
        if last_try:
            return f"failed: {exc}"
        raise
    except RecipientUnreachable as exc:
        return await _unreachable(item, marks, str(exc), outcome)
    except ChannelError as exc:
        outcome(OutboxStatus.FAILED, str(exc))
        return f"failed: {exc}"
    outcome(OutboxStatus.SENT, None, receipt.external_id)
    if not isinstance(sender, HandsOver):
        # No hand-over marked this send: the row is marked before its contact's next send.
        await marks.sync()
    return "sent"


DEFER_AT_MOST = 10
"""A peer's "come back in N seconds", when longer than RQ's first retry interval, defers the
row (:class:`Deferred`) on its first ``DEFER_AT_MOST`` tries; after that it goes to RQ's
retries like any other transient failure, which end in the row parked: a peer that always
says "later" cannot keep a row owed for ever."""


class Deferred(Exception):
    """The peer asked to be tried again at ``due_at`` (Telegram's flood control, a 429's
    ``retry_after``): sooner, as RQ's fixed retries would, only meets the same refusal and
    uses up a try."""

    def __init__(self, cause: TransientChannelError, due_at: datetime) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.due_at = due_at


def _owed_here(row: OutboxRow, job_id: str | None) -> bool:
    """Whether this job is to deliver ``row`` (not settled, and queued in it if it has a name)."""
    if row.status in (OutboxStatus.SENT.value, OutboxStatus.FAILED.value):
        return False
    return job_id is None or _ours(row, job_id)


def _ours(row: OutboxRow, job_id: str) -> bool:
    """Whether ``row`` is queued in the job ``job_id`` (or queued before rows named their job)."""
    return row.status == OutboxStatus.QUEUED.value and row.job_id in (None, job_id)


async def _defer(
    marks: Marks, row: OutboxRow, later: list[int], deferred: Deferred, job_id: str | None
) -> None:
    """``row`` (a try) and the contact's ``later`` rows of the job (not tried) pending again,
    due when the peer asked; the relay queues them then, in order. Only rows still owed by
    this job: one settled meanwhile keeps its state."""
    await marks.sync()  # what the job marked so far first: this write comes after it
    pending = {"status": OutboxStatus.PENDING.value, "due_at": deferred.due_at, "job_id": None}
    still_ours = still_owed_by(job_id)
    async with marks.store.write() as session:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row.id, still_ours)
            .values(
                **pending,
                attempts=OutboxRow.attempts + 1,
                last_error=str(deferred.cause),
                external_id=None,  # a hand-over mark: the peer refused the message
            )
        )
        if later:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(later), still_ours)
                .values(**pending, last_error=f"waiting behind outbox {row.id}")
            )
    log.info(
        "delivery deferred as the peer asked",
        extra={"outbox_id": row.id, "later": len(later), "due_at": deferred.due_at.isoformat()},
    )


async def _tell_the_desk(marks: Marks, row: OutboxRow) -> None:
    """An agent's reply or progress update failed for good: the console is told (its ticket's
    ``updated_at`` moves, after the row's mark, or the reload could read it still pending).
    Failures are rare: the extra commit is too."""
    if row.ticket_id is None or not agents_words(row.kind, row.template):
        return
    try:
        await marks.sync()
        async with marks.store.write() as session:
            await show_outcome(session, {row.ticket_id}, utcnow())
    except Exception as exc:  # the row is marked failed all the same: shown on the next load
        log.warning("failed reply not signalled", extra={"outbox_id": row.id, "error": repr(exc)})


async def _unreachable(
    item: LoadedRow, marks: Marks, reason: str, outcome: Callable[[OutboxStatus, str], None]
) -> str:
    """The row's contact cannot be written to on its channel: the row fails, and a notice or
    survey is owed on their email instead (``gateway/outbox_fallback.py``)."""
    async with marks.store.write() as session:
        handed = await hand_to_email(session, item.row.id, reason, utcnow())
    if handed is not None:
        reason = f"{reason}; handed to email (outbox {handed})"
        log.info("notice handed to email", extra={"outbox_id": item.row.id, "to": handed})
    outcome(OutboxStatus.FAILED, reason)
    return f"failed: {reason}"
