"""The gateway's core put together from its settings: the knowledge base the store holds, and
the pipeline (ingest, then routing) every channel hands its messages to.

The web application builds it at start-up; ``gateway inbound replay`` builds the same for one
parked input, so that the input is stored, answered and escalated as the gateway would have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from gateway.dispatch import LeastLoaded
from gateway.ingest import Ingest
from gateway.knowledge import enabled_entries
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.routing import Router
from gateway.settings import Settings
from gateway.sla import SlaPolicy
from gateway.store import Store
from gateway.store.types import utcnow
from knowledge_base.base import KnowledgeBase, NeverMatches
from knowledge_base.entry import KBEntry
from knowledge_base.service import MatcherKB
from knowledge_base.swappable import SwappableKB

log = logging.getLogger(__name__)


def build_pipeline(
    settings: Settings,
    store: Store,
    kb: KnowledgeBase,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Pipeline:
    """Ingest and a router answering from ``kb``, as ``settings`` configure them."""
    sla = SlaPolicy.from_settings(settings.sla)
    ingest = Ingest(
        store, zone=settings.zone, reopen_days=settings.reopen_days, clock=clock, sla=sla
    )
    router = Router(store, kb, dispatcher=LeastLoaded(sla), clock=clock)
    return Pipeline(ingest, router, metrics=metrics)


async def stored_kb(store: Store) -> KnowledgeBase:
    """The matcher over the store's enabled entries (built before serving), or none to match.

    Wrapped in a :class:`SwappableKB`, which the admin API refreshes after each edit.
    """

    async def load() -> tuple[KBEntry, ...]:
        return await enabled_entries(store)

    try:
        entries = await enabled_entries(store)
    except (SQLAlchemyError, OSError):
        log.exception("knowledge base not loaded: the store is not ready")
        return SwappableKB(NeverMatches(), load)
    if not entries:
        return SwappableKB(NeverMatches(), load)
    started = time.perf_counter()
    built = await MatcherKB.build(entries)
    log.info(
        "knowledge base ready",
        extra={"entries": len(entries), "seconds": round(time.perf_counter() - started, 1)},
    )
    return SwappableKB(built, load)


async def close_kb(kb: KnowledgeBase) -> None:
    """Release what a matcher holds (its encoder's threads)."""
    if isinstance(kb, SwappableKB):
        await kb.close()
    elif isinstance(kb, MatcherKB):
        kb.close()
