"""Durable listener state: each mailbox's UIDVALIDITY and last UID, and parked mail."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.models import Channel
from gateway.store import Store
from gateway.store.tables import ChannelState, ParkedInbound


@dataclass(frozen=True, slots=True)
class Cursor:
    """Every UID up to ``last_uid`` under ``uidvalidity`` is done (stored, parked or dropped)."""

    uidvalidity: int
    last_uid: int


async def load_cursor(store: Store, key: str) -> Cursor | None:
    async with store.read() as session:
        row = await session.get(ChannelState, (Channel.EMAIL.value, key))
        if row is None:
            return None
        return Cursor(int(row.value["uidvalidity"]), int(row.value["last_uid"]))


async def save_cursor(store: Store, key: str, cursor: Cursor, now: datetime) -> None:
    value = {"uidvalidity": cursor.uidvalidity, "last_uid": cursor.last_uid}
    async with store.write() as session:
        row = await session.get(ChannelState, (Channel.EMAIL.value, key), with_for_update=True)
        if row is None:
            session.add(
                ChannelState(channel=Channel.EMAIL.value, key=key, value=value, updated_at=now)
            )
        else:
            row.value = value
            row.updated_at = now


async def park(
    store: Store,
    *,
    external_id: str,
    reason: str,
    detail: str,
    raw: bytes,
    attempts: int,
    now: datetime,
) -> None:
    """Keep a mail we gave up on, whole, with why (once per ``external_id``)."""
    # A different mail under a Message-ID already parked (a client minting one id for all its
    # mail) is parked under an id made from both, or its bytes would be kept nowhere.
    own = "sha256:" + hashlib.sha256(external_id.encode() + b"\0" + raw).hexdigest()
    try:
        async with store.write() as session:
            for key in (external_id, own):
                existing = await session.scalar(
                    select(ParkedInbound).where(
                        ParkedInbound.channel == Channel.EMAIL.value,
                        ParkedInbound.external_id == key,
                    )
                )
                if existing is None:
                    break
                if existing.raw == raw or not raw:  # this mail again
                    existing.attempts += attempts
                    existing.detail = detail
                    return
            session.add(
                ParkedInbound(
                    channel=Channel.EMAIL.value,
                    external_id=key,
                    reason=reason[:60],
                    detail=detail,
                    raw=raw,
                    attempts=attempts,
                    created_at=now,
                )
            )
    except IntegrityError:  # parked concurrently by another listener on the same mailbox
        pass
