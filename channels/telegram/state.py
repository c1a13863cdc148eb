"""The channel's durable cursors in ``channel_state``: the polling offset, and things done once.

Rows are keyed ``(channel='telegram', key)``. The offset is written only after the updates before
it are committed, so a restart resumes exactly where the last commit left off (Telegram redelivers
anything past the stored offset, and ingest's dedupe absorbs what was committed but not yet
confirmed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Channel
from gateway.store import Store
from gateway.store.tables import ChannelState

STATE: Table = ChannelState.__table__  # type: ignore[assignment]
CHANNEL = Channel.TELEGRAM.value
OFFSET_KEY = "offset"


async def load_offset(store: Store) -> int:
    """The next ``update_id`` to ask ``getUpdates`` for (0: whatever Telegram has)."""
    async with store.read() as session:
        value = await session.scalar(
            select(STATE.c.value).where(STATE.c.channel == CHANNEL, STATE.c.key == OFFSET_KEY)
        )
    return int(value["offset"]) if value else 0


async def save_offset(store: Store, offset: int, now: datetime) -> None:
    """Record that every update below ``offset`` is committed (never moves backwards)."""
    async with store.write() as session:
        current = await session.scalar(
            select(STATE.c.value)
            .where(STATE.c.channel == CHANNEL, STATE.c.key == OFFSET_KEY)
            .with_for_update()
        )
        if current is None:
            await _insert(session, OFFSET_KEY, {"offset": offset}, now)
        elif int(current["offset"]) < offset:
            await session.execute(
                update(STATE)
                .where(STATE.c.channel == CHANNEL, STATE.c.key == OFFSET_KEY)
                .values(value={"offset": offset}, updated_at=now)
            )


async def claim_once(store: Store, key: str, value: dict[str, Any], now: datetime) -> bool:
    """True the first time ``key`` is claimed, on any process; False ever after."""
    try:
        async with store.write() as session:
            exists = await session.scalar(
                select(STATE.c.key).where(STATE.c.channel == CHANNEL, STATE.c.key == key)
            )
            if exists is not None:
                return False
            await _insert(session, key, value, now)
    except IntegrityError:
        return False  # another process claimed it between our read and insert
    return True


async def _insert(session: AsyncSession, key: str, value: dict[str, Any], now: datetime) -> None:
    await session.execute(
        insert(STATE).values(channel=CHANNEL, key=key, value=value, updated_at=now)
    )
