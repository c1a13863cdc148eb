"""What admins do with input a channel gave up on (``parked_inbound``): see it, take it out,
drop it once dealt with.

A Telegram update or a mail that kept failing for a reason of its own (a bug its content meets)
is parked whole, with the error, so it cannot hold back what comes after it. Unless it was
parked for statement timeouts alone (the running gateway replays those by itself, a few times:
:mod:`gateway.replay_sweep`), nothing reads it back by itself: it waits for a person, who lists
it (``gateway inbound parked``, and ``gateway_inbound_parked{channel}`` in ``/metrics`` says one
is there), fixes the cause, and feeds it in again (``gateway inbound replay ID``:
:mod:`gateway.inbound_replay`), which takes it off the list. ``gateway inbound raw ID`` prints
its bytes, ``gateway inbound drop ID`` drops one dealt with otherwise. It is never stored
twice: it was never stored, and a second copy is deduplicated as any redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select

from gateway.store import Store
from gateway.store.tables import ParkedInbound


@dataclass(frozen=True, slots=True)
class Parked:
    """One parked input, without its bytes."""

    id: int
    channel: str
    external_id: str | None
    reason: str
    attempts: int
    created_at: datetime
    detail: str

    def line(self) -> str:
        """Tab-separated, the detail's first line only (a traceback's last words)."""
        first = self.detail.strip().splitlines()[0] if self.detail.strip() else ""
        fields = (self.id, self.channel, self.external_id or "-", self.reason, self.attempts)
        return "\t".join(map(str, (*fields, self.created_at.isoformat(), first[:200])))


async def parked_inputs(store: Store) -> list[Parked]:
    """Every parked input, oldest first."""
    async with store.read() as session:
        rows = await session.execute(
            select(
                ParkedInbound.id,
                ParkedInbound.channel,
                ParkedInbound.external_id,
                ParkedInbound.reason,
                ParkedInbound.attempts,
                ParkedInbound.created_at,
                ParkedInbound.detail,
            ).order_by(ParkedInbound.id)
        )
        return [Parked(*row[:6], row[6] or "") for row in rows.all()]


async def parked_raw(store: Store, parked_id: int) -> bytes | None:
    """The parked input's bytes as they came (an update's JSON, a mail's RFC 5322 bytes)."""
    async with store.read() as session:
        raw: bytes | None = await session.scalar(
            select(ParkedInbound.raw).where(ParkedInbound.id == parked_id)
        )
        return raw


async def parked_counts(store: Store) -> dict[str, int]:
    """Parked inputs by channel, for ``/metrics``."""
    async with store.read() as session:
        rows = await session.execute(
            select(ParkedInbound.channel, func.count()).group_by(ParkedInbound.channel)
        )
        return {channel: count for channel, count in rows.all()}


async def drop_parked(store: Store, parked_id: int) -> bool:
    """Remove a parked input from the list (dealt with); False if there is none."""
    async with store.write() as session:
        done = await session.execute(delete(ParkedInbound).where(ParkedInbound.id == parked_id))
        return bool(getattr(done, "rowcount", 0))
