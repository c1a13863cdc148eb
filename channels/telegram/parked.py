"""Updates given up on, kept whole in ``parked_inbound``: the step polling and the webhook share.

An update that fails for a reason of its own (a bug its content meets) is tried again, and
after ``MAX_ATTEMPTS`` parked with the error and acknowledged, so that one bad update cannot
hold back the chat's later ones (nor, in polling, every chat's); one whose storing keeps
hitting the database's statement timeout, after :data:`channels.failures.STATEMENT_TIMEOUTS`.
One that fails for a passing reason (:func:`channels.failures.classify` and :data:`PASSING`:
the database away, flood control) is never parked: a blip of a few seconds would leave the
message to a person. An update parked for its statement timeouts alone is kept with the reason
:data:`channels.failures.TIMED_OUT` (else ``failed``), which the gateway replays by itself once
the database answers normally again (:mod:`gateway.replay_sweep`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from telegram.error import BadRequest, NetworkError, RetryAfter

from channels import failures
from channels.failures import Failure
from gateway.models import Channel
from gateway.store import Store
from gateway.store.tables import ParkedInbound

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Attempts at an update failing for a reason of its own before it is parked."""

PASSING = (
    NetworkError,  # PTB's, TimedOut included
    RetryAfter,  # flood control: a command's answer, say
)
"""Telegram's failures that say nothing about the update, besides those of every channel
(:func:`channels.failures.classify`): it is retried until it is stored."""


def classify(exc: Exception) -> Failure:
    """What ``exc``, failing the update, says about it (whether and when it may be parked)."""
    # PTB's BadRequest is a NetworkError too, but Telegram refusing is no blip.
    if isinstance(exc, BadRequest):
        return Failure.OWN
    if isinstance(exc, PASSING):
        return Failure.PASSING
    return failures.classify(exc)


async def park(
    store: Store,
    update: Mapping[str, Any],
    exc: Exception,
    *,
    attempts: int,
    now: datetime,
    timed_out: bool = False,
) -> None:
    """Keep ``update``, which failed ``attempts`` times (last with ``exc``), once;
    ``timed_out``: for statement timeouts alone (:meth:`channels.failures.Tally.timed_out`)."""
    log.error(
        "telegram update parked",
        extra={"update_id": update.get("update_id"), "error": type(exc).__name__},
    )
    external_id = f"update:{update.get('update_id')}"
    try:
        async with store.write() as session:
            parked = await session.scalar(
                select(ParkedInbound.id).where(
                    ParkedInbound.channel == Channel.TELEGRAM.value,
                    ParkedInbound.external_id == external_id,
                )
            )
            if parked is None:
                await session.execute(
                    insert(ParkedInbound).values(
                        channel=Channel.TELEGRAM.value,
                        external_id=external_id,
                        reason=failures.TIMED_OUT if timed_out else "failed",
                        detail=f"{type(exc).__name__}: {exc}"[:2000],
                        raw=json.dumps(update).encode(),
                        attempts=attempts,
                        created_at=now,
                    )
                )
    except IntegrityError:  # parked at the same moment by another process
        pass
