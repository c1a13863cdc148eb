"""What a channel adapter is handed: ``on_message(inbound) -> IngestResult``.

The adapter acks its channel once ``on_message`` returns: the message is committed by then.
Routing (knowledge base or escalation) runs after, in a task the pipeline tracks and drains on
shutdown; a message a crash left unrouted is routed on redelivery or by the router's sweep.
A message the router puts off (:attr:`Route.LATER`: an album's photo waiting for its caption) is
routed again after the delay; at shutdown that timer is dropped, and the sweep routes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from gateway.ingest import Ingest, IngestResult
from gateway.metrics import Metrics
from gateway.models import Channel, InboundMessage
from gateway.routing import Route, Router

log = logging.getLogger(__name__)

OnMessage = Callable[[InboundMessage], Awaitable[IngestResult]]


class Pipeline:
    """Ingest, then route in the background."""

    def __init__(self, ingest: Ingest, router: Router, *, metrics: Metrics | None = None) -> None:
        self.ingest = ingest
        self.router = router
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._later: dict[int, asyncio.TimerHandle] = {}
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
            outcome = await self.router.route(message_id, seen=seen)
        except Exception:
            # The message stays unrouted and the sweep tries again; never lose the error.
            log.exception("routing failed", extra={"message_id": message_id})
            return
        if outcome.route is Route.LATER:
            self._route_later(message_id, outcome.wait or 0.0)
        else:
            self.committed.set()

    def _route_later(self, message_id: int, delay: float) -> None:
        """Route ``message_id`` again in ``delay`` seconds (one timer a message): a timer, not
        a sleeping task, so that a shutdown drops it rather than waiting for it."""
        earlier = self._later.pop(message_id, None)
        if earlier is not None:
            earlier.cancel()

        def due() -> None:
            del self._later[message_id]
            self._schedule(message_id, None)

        self._later[message_id] = asyncio.get_running_loop().call_later(delay, due)

    async def drain(self, *, later: bool = False) -> None:
        """Wait for routing still under way (at shutdown, and in tests).

        Routing put off until later is dropped: its messages stay unrouted, for the sweep (or
        a redelivery) to route, rather than holding up a shutdown. With ``later`` (tests), it
        is waited for too.
        """
        loop = asyncio.get_running_loop()
        while self._tasks or (later and self._later):
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                soonest = min(timer.when() for timer in self._later.values())
                await asyncio.sleep(max(0.0, soonest - loop.time()))
        for timer in self._later.values():
            timer.cancel()
        self._later.clear()
