"""Ingest: the one entry every channel calls with an :class:`InboundMessage`.

``result = await ingest(inbound)`` returns once the message is committed: it is deduped on
``(channel, external_id)`` (a replay returns the stored message and changes nothing), its sender
is resolved to a contact, it lands on its conversation's ticket (or opens, reopens, or follows up
one), and the outbox rows it owes are written, all in one transaction. A channel acks its message
only after that (invariants 1-3).

Group commit: calls that arrive while a batch is being written queue up and go together in the
next transaction, so a busy gateway pays for a few statements per batch, not per message, and a
quiet one adds no wait at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.batching import GroupCommit
from gateway.ingest.result import IngestResult
from gateway.ingest.transaction import ingest_batch
from gateway.models import InboundMessage
from gateway.sla import DEFAULT_POLICY, SlaPolicy
from gateway.store import Store
from gateway.store.types import utcnow

__all__ = ["Ingest", "IngestResult"]

log = logging.getLogger(__name__)

_ATTEMPTS = 5
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        # A concurrent writer stored the same message or identity first; the next attempt finds it.
        return True
    if isinstance(exc, DBAPIError):
        # A connection the server dropped is invalidated and replaced by the pool. If it died
        # during COMMIT the batch may be stored: the next attempt then finds it (deduplicated).
        if exc.connection_invalidated:
            return True
        return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES
    return False


class Ingest:
    """Stores inbound messages; call it: ``result = await ingest(inbound)``."""

    def __init__(
        self,
        store: Store,
        *,
        zone: ZoneInfo,
        reopen_days: int = 7,
        clock: Callable[[], datetime] = utcnow,
        max_batch: int = 100,
        sla: SlaPolicy = DEFAULT_POLICY,
    ) -> None:
        self.store = store
        self.sla = sla
        self.zone = zone
        self.reopen_window = timedelta(days=reopen_days)
        self.clock = clock
        self._batches = GroupCommit(
            self._write, max_batch=max_batch, max_writers=store.writers, turns=store.write_turns
        )

    async def __call__(self, inbound: InboundMessage) -> IngestResult:
        return await self._batches.submit(inbound)

    async def _write(self, messages: list[InboundMessage]) -> list[IngestResult]:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self.store.write() as session:
                    return await ingest_batch(
                        session,
                        messages,
                        now=self.clock(),
                        zone=self.zone,
                        reopen_window=self.reopen_window,
                        sla=self.sla,
                    )
            except Exception as exc:
                if attempt == _ATTEMPTS or not _retryable(exc):
                    raise
                log.info("ingest conflict, retrying", extra={"attempt": attempt})
        raise AssertionError("unreachable")  # pragma: no cover
