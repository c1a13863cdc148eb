"""How long the channel's ``channel_state`` rows are kept, and the sweep that removes those
past it (``gateway cron``, :mod:`workers.state_sweep`).

Key by key (:mod:`channels.telegram.state` writes them, :mod:`channels.telegram.inbound` the
groups'):

- ``offset``: one row, the poller's cursor. Kept.
- ``command:<chat>``: the chat's last answered command, so that a redelivery of it is not
  answered twice. Telegram redelivers an update only while it holds it, and it holds one
  "not longer than 24 hours" (https://core.telegram.org/bots/api#getting-updates); the row is
  written once the command was answered, after Telegram received it. Removed :data:`KEPT_FOR`
  after it was written. An admin feeding a parked update in again is not covered by it in any
  case: the row holds the chat's last command only, and a command is recorded only once
  answered, which a parked one was not.
- ``failures:<update_id>``: how often a webhook update failed, to park it after
  ``MAX_ATTEMPTS`` (or ``STATEMENT_TIMEOUTS``). It matters while Telegram may deliver the
  update again (24 hours, as above), and was never removed: every update that failed once and
  then succeeded left one.
  Removed :data:`KEPT_FOR` after its last count. Removing it also keeps an old count from
  meeting a new update of the same id once Telegram renumbers its updates, which it does
  after a week without any (https://core.telegram.org/bots/api#update).
- ``progress:<outbox_id>``: the parts a delivery stopped part-way had sent, so that its next
  attempt sends only the rest. Cleared when the delivery ends; left behind when that clearing
  failed, or a killed delivery was taken as delivered. It matters while the outbox row may be
  delivered again: pending, queued or failed (an admin may retry it,
  :func:`gateway.outbox_admin.retry_row`). Removed once its row is sent (no path leads back
  from ``sent``) or gone, and :data:`KEPT_FOR` old. Without it a retry would send the
  customer the parts they read already.
- ``part:<chat>:<message>``: which outbox row sent a later part of a delivery, so that the
  customer's Reply to that part threads onto its ticket
  (:func:`channels.telegram.conversations.replied_ticket`). Telegram lets a message be
  replied to for as long as it exists, and outbox rows are never removed: kept. They grow
  with the outbox (a row per extra part), not on their own.
- ``group_explained:<chat>``: the group was told once that the bot serves private chats only.
  Removed, the group would be told again: kept (one row per group the bot was added to).

Each batch is chosen in a read (in key order, after the last batch's key: one pass over the
channel's rows in all) and removed in a write of its own that looks again at each row's age
and its outbox row, so SQLite's write lock is held for a few hundred primary-key deletes at a
time, and a row written again meanwhile stays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, or_, select

from channels.telegram.state import (
    CHANNEL,
    COMMAND_PREFIX,
    FAILURES_PREFIX,
    PROGRESS_PREFIX,
    STATE,
)
from gateway.models import OutboxStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow

log = logging.getLogger(__name__)

OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]

KEPT_FOR = timedelta(days=2)
"""How long a swept row is kept after it was last written: Telegram's 24 hours of redelivery,
and a day to spare (a gateway down for a while, the sweep's own interval)."""
BATCH = 500
"""Rows removed per write transaction."""

_SWEPT = (FAILURES_PREFIX, COMMAND_PREFIX, PROGRESS_PREFIX)


async def sweep_state(store: Store, now: datetime, *, batch: int = BATCH) -> int:
    """Remove the channel's rows past their use (see the module's doc); how many went."""
    cutoff = now - KEPT_FOR
    removed = 0
    after = ""
    while True:
        async with store.read() as session:
            keys = (
                await session.scalars(
                    select(STATE.c.key)
                    .where(
                        STATE.c.channel == CHANNEL,
                        STATE.c.key > after,
                        or_(*(STATE.c.key.like(f"{prefix}%") for prefix in _SWEPT)),
                        STATE.c.updated_at < cutoff,
                    )
                    .order_by(STATE.c.key)
                    .limit(batch)
                )
            ).all()
        if keys:
            removed += await _remove(store, keys, cutoff)
        if len(keys) < batch:
            break
        after = keys[-1]
    if removed:
        log.info("telegram channel state swept", extra={"removed": removed})
    return removed


async def _remove(store: Store, keys: Sequence[str], cutoff: datetime) -> int:
    """Remove the rows of ``keys`` still older than ``cutoff``, a delivery's progress only once
    its outbox row is sent or gone."""
    progress = {
        int(key.removeprefix(PROGRESS_PREFIX)): key
        for key in keys
        if key.startswith(PROGRESS_PREFIX)
    }
    async with store.write() as session:
        owed: set[int] = set()
        if progress:
            owed = set(
                (
                    await session.scalars(
                        select(OUTBOX.c.id).where(
                            OUTBOX.c.id.in_(progress), OUTBOX.c.status != OutboxStatus.SENT.value
                        )
                    )
                ).all()
            )
        kept = {progress[i] for i in owed}
        doomed = [key for key in keys if key not in kept]
        if not doomed:
            return 0
        result = await session.execute(
            delete(STATE).where(
                STATE.c.channel == CHANNEL, STATE.c.key.in_(doomed), STATE.c.updated_at < cutoff
            )
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
