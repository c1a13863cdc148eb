"""Writing what became of outbox rows, in as few commits as the guarantees allow.

A delivery job marks its rows through :class:`Marks`: outcomes (sent, failed, a try that failed)
are queued with :meth:`Marks.note` and written by the next commit. A hand-over mark (a sender's
last moment before the peer has a message for good) and :meth:`Marks.sync` wait until a commit
holding everything queued so far is done. Commits are grouped: while one is being written, what
the job's other sends queue up waits for the next, which takes it all (a commit costs an fsync,
several milliseconds; the sends in flight share it). A job of mails costs about one commit per
mails in flight, not one per mail.

On PostgreSQL the marks go through one connection held for the job (the pool's ping on every
checkout would cost three round trips a commit); SQLite's single writer is taken per commit, so
ingest never waits behind a send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

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


class Marks:
    """Outcomes and hand-overs waiting for the next (group) commit; see the module doc."""

    def __init__(self, store: Store, connection: AsyncConnection | None) -> None:
        self.store = store
        self.connection = connection
        self._outcomes: list[tuple[Outcome, str, str | None]] = []
        self._handovers: list[dict[str, Any]] = []
        self._queued = 0  # marks queued so far (a ticket number)
        self._written = 0  # marks written by the commits so far
        self._under_way: asyncio.Event | None = None  # the commit being written

    def note(self, outcome: Outcome, *, status_now: str, external_id_now: str | None) -> None:
        """Queue ``outcome`` for a row whose current status and external id are given (a row
        that stays queued keeps its status and loses its external id: only a sent row has one).
        """
        self._outcomes.append((outcome, status_now, external_id_now))
        self._queued += 1

    async def handed_over(self, outbox_id: int, external_id: str) -> None:
        """Record, durably, that ``outbox_id`` is about to pass to the peer as ``external_id``;
        returns once it is committed."""
        self._handovers.append({"row_id": outbox_id, "new_external_id": external_id})
        self._queued += 1
        await self.sync()

    async def sync(self) -> None:
        """Return once everything queued so far is committed (joining a commit under way, or
        the next). Everyone a commit covers wakes at once when it ends: a mail's end of data
        follows its hand-over mark without waiting for the other sends to take turns."""
        ticket = self._queued
        while self._written < ticket:
            under_way = self._under_way
            if under_way is not None:
                await under_way.wait()  # then look again: it may not have covered us
                continue
            self._under_way = event = asyncio.Event()
            outcomes, self._outcomes = self._outcomes, []
            handovers, self._handovers = self._handovers, []
            upto = self._queued
            try:
                await self._commit(outcomes, handovers)
                self._written = upto
            except BaseException:
                # Put them back for whoever commits next (or the job's final sync).
                self._outcomes[:0] = outcomes
                self._handovers[:0] = handovers
                raise
            finally:
                self._under_way = None
                event.set()

    async def _commit(
        self, outcomes: list[tuple[Outcome, str, str | None]], handovers: list[dict[str, Any]]
    ) -> None:
        if not outcomes and not handovers:
            return
        async with self._transaction() as connection:
            if outcomes:
                await connection.execute(_OUTCOME, _outcome_params(outcomes))
            if handovers:
                await connection.execute(_HANDED_OVER, handovers)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        if self.connection is not None:
            async with self.connection.begin():
                yield self.connection
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


@asynccontextmanager
async def marks_for(store: Store) -> AsyncIterator[Marks]:
    """A :class:`Marks` for one job; what is still waiting at the end is flushed, also when
    the job raises (its error is the one that propagates)."""
    if store.is_sqlite:
        async with _flushed(Marks(store, None)) as marks:
            yield marks
        return
    async with (
        store.write_engine.connect() as connection,
        _flushed(Marks(store, connection)) as marks,
    ):
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
