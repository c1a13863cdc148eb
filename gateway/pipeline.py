"""What a channel adapter is handed: ``on_message(inbound) -> IngestResult``.

The adapter acks its channel once ``on_message`` returns: the message is committed by then.
Routing (knowledge base or escalation) runs after, in a task the pipeline tracks and drains on
shutdown; a message a crash left unrouted is routed on redelivery or by the router's sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from gateway.ingest import Ingest, IngestResult
from gateway.metrics import Metrics
from gateway.models import Channel, InboundMessage
from gateway.routing import Router

log = logging.getLogger(__name__)

OnMessage = Callable[[InboundMessage], Awaitable[IngestResult]]


class Pipeline:
    """Ingest, then route in the background."""

    def __init__(self, ingest: Ingest, router: Router, *, metrics: Metrics | None = None) -> None:
        self.ingest = ingest
        self.router = router
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._ingested: dict[Channel, Counter] = {}
        self.committed = asyncio.Event()
        """Set after a commit that wrote outbox rows (wakes the relay; it also polls)."""

    async def on_message(self, inbound: InboundMessage) -> IngestResult:
        """Store one inbound message and schedule its routing; safe to call again on replay."""
        result = await self.ingest(inbound)
        if self.metrics is not None and not result.duplicate:
            counter = self._ingested.get(inbound.channel)
            if counter is None:
                # prometheus_client's labels() costs as much as the rest of this method.
                counter = self._ingested[inbound.channel] = self.metrics.ingested.labels(
                    channel=inbound.channel.value
                )
            counter.inc()
        if result.notified:
            self.committed.set()
        if result.routed and not result.duplicate:
            return result  # ingest already settled it under the ticket's lock: nothing to route
        self._schedule(result.message_id, None if result.duplicate else result)
        return result

    def reroute(self, message_id: int) -> None:
        """Route the stored message ``message_id`` in the background, read back from the
        store (its routing was undone: an edit made a "thanks" a request)."""
        self._schedule(message_id, None)

    def _schedule(self, message_id: int, seen: IngestResult | None) -> None:
        task = asyncio.create_task(self._route(message_id, seen))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _route(self, message_id: int, seen: IngestResult | None) -> None:
        try:
            await self.router.route(message_id, seen=seen)
            self.committed.set()
        except Exception:
            # The message stays unrouted and the sweep tries again; never lose the error.
            log.exception("routing failed", extra={"message_id": message_id})

    async def drain(self) -> None:
        """Wait for routing still under way (at shutdown, and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
