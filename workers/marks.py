"""Writing what became of outbox rows, in as few commits as the guarantees allow.

A delivery job marks its rows through :class:`Marks`: outcomes (sent, failed, a try that failed)
are queued with :meth:`Marks.note` and written by the next commit; :meth:`Marks.sync` returns once
a commit holding everything queued so far is done. Commits are grouped: while one is being
written, what the job's other sends queue up waits for the next, which takes it all (a commit
costs an fsync, a millisecond or more; the sends in flight share it).

A sender that hands over (``channels.base.HandsOver``) gets its hand-over from
:meth:`Marks.handing_over`: the mark (the row's ``external_id``, the sender's last moment before
the peer has the message for good) is committed before the sender goes on, together with the
outcomes queued so far. Between that commit and the peer taking the message, a kill loses the
message (the retry takes it as delivered), so only one send of a job may be in that window: the
hand-over takes the job's *baton* and keeps it until its send has ended. The other sends of the
job go on beside it (connect, envelope, content, the peer's answers), and wait for the baton only
at their own hand-over. A hand-over whose commit fails is not written later: its send stops
before the peer has the message, so a mark written afterwards would lose it.

On PostgreSQL the marks go through one connection held for the job, in autocommit: a commit is
one ``UPDATE ... FROM unnest(...)`` statement, one round trip (BEGIN, two statements and COMMIT
were four, and SQLAlchemy's work for each); SQLite's single writer is taken per commit, so
ingest never waits behind a send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from channels.base import Handover
from gateway.models import OutboxStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow
from gateway.store.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one try did to a row: ``status`` None means it stays queued for a retry."""

    outbox_id: int
    status: OutboxStatus | None
    error: str | None
    external_id: str | None = None


_TABLE = cast(Table, OutboxRow.__table__)  # Core: one executemany for many rows' outcomes
_OUTCOME = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(
        attempts=_TABLE.c.attempts + 1,
        last_error=bindparam("error"),
        status=bindparam("new_status"),
        sent_at=bindparam("new_sent_at"),
        external_id=bindparam("new_external_id"),
    )
)
_HANDED_OVER = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(external_id=bindparam("new_external_id"))
)
_ALL_AT_ONCE = text(
    """
    UPDATE outbox SET
        attempts = outbox.attempts + v.tried,
        last_error = CASE WHEN v.tried = 1 THEN v.error ELSE outbox.last_error END,
        status = COALESCE(v.status, outbox.status),
        sent_at = CASE WHEN v.tried = 1 THEN v.sent_at ELSE outbox.sent_at END,
        external_id = v.external_id
    FROM unnest(
        CAST(:ids AS integer[]), CAST(:tried AS integer[]), CAST(:errors AS text[]),
        CAST(:statuses AS varchar[]), CAST(:sent_ats AS timestamptz[]),
        CAST(:external_ids AS varchar[])
    ) AS v(id, tried, error, status, sent_at, external_id)
    WHERE outbox.id = v.id
    """
)
"""PostgreSQL: the outcomes (``tried`` 1) and a hand-over (``tried`` 0: only its external id)
of one commit, in one statement."""


class Marks:
    """Outcomes and hand-overs waiting for the next (group) commit; see the module doc."""

    def __init__(self, store: Store, connection: AsyncConnection | None) -> None:
        self.store = store
        self.connection = connection
        self._outcomes: list[tuple[Outcome, str, str | None]] = []
        self._queued = 0  # outcomes queued so far (a ticket number)
        self._written = 0  # outcomes written by the commits so far
        self._writing = asyncio.Lock()  # one commit at a time; the next takes all queued
        self._baton = asyncio.Lock()  # one send from its hand-over mark to its end

    def note(self, outcome: Outcome, *, status_now: str, external_id_now: str | None) -> None:
        """Queue ``outcome`` for a row whose current status and external id are given (a row
        that stays queued keeps its status and loses its external id: only a sent row has one).
        """
        self._outcomes.append((outcome, status_now, external_id_now))
        self._queued += 1

    async def sync(self) -> None:
        """Return once everything queued so far is committed (by a commit under way, if it
        holds it, or the next)."""
        ticket = self._queued
        if self._written >= ticket:
            return
        async with self._writing:
            if self._written < ticket:  # else the commit we waited for covered us
                await self._write(None)

    @asynccontextmanager
    async def handing_over(self, outbox_id: int) -> AsyncIterator[Handover]:
        """The hand-over for one send of ``outbox_id``, to give the sender; leave the block
        when the send has ended (delivered or not). See the module doc for the baton."""
        held = False

        async def handover(external_id: str | None) -> None:
            nonlocal held
            if external_id is None:  # withdrawn: the peer refused, nothing went
                async with self._writing:
                    await self._write({"id": outbox_id, "external_id": None})
                if held:
                    held = False
                    self._baton.release()
                return
            if not held:
                await self._baton.acquire()
                held = True
            async with self._writing:
                await self._write({"id": outbox_id, "external_id": external_id})

        try:
            yield handover
        finally:
            if held:
                self._baton.release()

    async def _write(self, handover: dict[str, Any] | None) -> None:
        outcomes, self._outcomes = self._outcomes, []
        upto = self._queued
        try:
            await self._commit(outcomes, handover)
        except BaseException:
            # Put them back for whoever commits next (or the job's final sync); not the
            # hand-over: its send stops here, before the peer has the message.
            self._outcomes[:0] = outcomes
            raise
        self._written = upto

    async def _commit(
        self, outcomes: list[tuple[Outcome, str, str | None]], handover: dict[str, Any] | None
    ) -> None:
        if not outcomes and handover is None:
            return
        params = _outcome_params(outcomes)
        if self.connection is not None:
            ids = [p["row_id"] for p in params] + ([handover["id"]] if handover else [])
            if len(set(ids)) == len(ids):  # one row twice would be updated once, by either
                await self.connection.execute(_ALL_AT_ONCE, _unnest_params(params, handover))
                return
        async with self._transaction() as connection:
            if params:
                await connection.execute(_OUTCOME, params)
            if handover is not None:
                await connection.execute(
                    _HANDED_OVER,
                    {"row_id": handover["id"], "new_external_id": handover["external_id"]},
                )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        if self.connection is not None:
            # In autocommit, statements commit one by one: keep several in one transaction.
            async with self.store.write_engine.begin() as connection:
                yield connection
            return
        async with self.store.write() as session:
            yield await session.connection()


def _outcome_params(outcomes: list[tuple[Outcome, str, str | None]]) -> list[dict[str, Any]]:
    now = utcnow()
    params = []
    for outcome, status_now, external_now in outcomes:
        sent = outcome.status is OutboxStatus.SENT
        params.append(
            {
                "row_id": outcome.outbox_id,
                "error": outcome.error,
                "new_status": outcome.status.value if outcome.status else status_now,
                "new_sent_at": now if sent else None,
                "new_external_id": (outcome.external_id or external_now) if sent else None,
            }
        )
    return params


def _unnest_params(
    params: list[dict[str, Any]], handover: dict[str, Any] | None
) -> dict[str, list[Any]]:
    """The columns of :data:`_ALL_AT_ONCE`: the outcomes' rows, then the hand-over's."""
    columns: dict[str, list[Any]] = {
        "ids": [p["row_id"] for p in params],
        "tried": [1] * len(params),
        "errors": [p["error"] for p in params],
        "statuses": [p["new_status"] for p in params],
        "sent_ats": [p["new_sent_at"] for p in params],
        "external_ids": [p["new_external_id"] for p in params],
    }
    if handover is not None:
        for name, value in zip(
            columns,
            (handover["id"], 0, None, None, None, handover["external_id"]),
            strict=True,
        ):
            columns[name].append(value)
    return columns


@asynccontextmanager
async def marks_for(store: Store) -> AsyncIterator[Marks]:
    """A :class:`Marks` for one job; what is still waiting at the end is flushed, also when
    the job raises (its error is the one that propagates)."""
    if store.is_sqlite:
        async with _flushed(Marks(store, None)) as marks:
            yield marks
        return
    async with store.write_engine.connect() as connection:
        # Each commit is one statement (see the module doc), so autocommit is one round trip.
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        async with _flushed(Marks(store, autocommit)) as marks:
            yield marks


@asynccontextmanager
async def _flushed(marks: Marks) -> AsyncIterator[Marks]:
    try:
        yield marks
    except BaseException:
        try:
            await marks.sync()
        except Exception:
            log.exception("outbox marks lost after a failed job; its retry decides again")
        raise
    await marks.sync()
