"""The channel's durable cursors in ``channel_state``: the polling offset, each chat's last
answered command, things done once, the later parts of the bot's split deliveries, and the
parts a delivery stopped part-way had sent (its next attempt sends only the rest). How long
each is kept, and the sweep of those past their use: :mod:`channels.telegram.retention`.

Rows are keyed ``(channel='telegram', key)``. The offset is written only after the updates before
it are committed, so a restart resumes exactly where the last commit left off (Telegram redelivers
anything past the stored offset, and ingest's dedupe absorbs what was committed but not yet
confirmed). It is written as the poller computed it, even when lower than the stored one: after
a week without updates Telegram numbers the next ones from a random id
(https://core.telegram.org/bots/api#update). An offset left at the old numbering's is harmless
while it lies far above the new ids (the Bot API server then answers from its oldest pending
update and confirms nothing: ``TQueue::get`` in tdlib's telegram-bot-api refuses an id "in the
future" more than 10 past its last), but once the new ids come within 10 of it, a restart asking
from it confirms the updates that arrived while the gateway was down, unread. A lower offset
can only redeliver, which dedupe absorbs.

A command is not a stored message, so ingest's dedupe does not see it; the ``update_id`` of the
last command answered in each chat is kept instead. Telegram hands a chat's updates over one at
a time, in order (the next only once the previous was acknowledged), so a redelivered command
is the one recorded for its chat: one row per chat suffices. Equal, not "at most": after the
renumbering the next ids may lie below the recorded one, and every command of the chat would
have been taken for answered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.failures import Failure, Tally
from gateway.models import Channel
from gateway.store import Store
from gateway.store.tables import ChannelState

STATE: Table = ChannelState.__table__  # type: ignore[assignment]
CHANNEL = Channel.TELEGRAM.value
OFFSET_KEY = "offset"
# The prefixes of the keys :mod:`channels.telegram.retention` sweeps (one row per item).
FAILURES_PREFIX = "failures:"
COMMAND_PREFIX = "command:"
PROGRESS_PREFIX = "progress:"


async def load_offset(store: Store) -> int:
    """The next ``update_id`` to ask ``getUpdates`` for (0: whatever Telegram has)."""
    value = await _read(store, OFFSET_KEY)
    return int(value["offset"]) if value else 0


async def save_offset(store: Store, offset: int, now: datetime) -> None:
    """Record that every update below ``offset`` is committed (lower than before too, after
    Telegram renumbered its updates: see the module's doc)."""
    await _record(store, OFFSET_KEY, "offset", offset, now)


async def command_answered(store: Store, chat_id: int, update_id: int) -> bool:
    """Whether the command of update ``update_id`` in ``chat_id`` was answered already."""
    value = await _read(store, _command_key(chat_id))
    return value is not None and update_id == int(value["update_id"])


async def record_answered(store: Store, chat_id: int, update_id: int, now: datetime) -> None:
    """Record that the chat's command of update ``update_id`` was carried out and answered."""
    await _record(store, _command_key(chat_id), "update_id", update_id, now)


async def count_failure(
    store: Store, update_id: int, now: datetime, *, failure: Failure = Failure.OWN
) -> Tally:
    """One more ``failure`` of update ``update_id`` that counts toward parking it; the tally
    so far (:class:`channels.failures.Tally`).

    For the webhook, where each of Telegram's deliveries is a request of its own, maybe to
    another gateway process. The count is kept once the update is parked: a delivery after
    that (our 200 lost on the way) is parked again at once, a no-op, and acknowledged."""
    key = _failures_key(update_id)
    try:
        return await _add_failure(store, key, failure, now)
    except IntegrityError:
        # Another process inserted the first count between our read and insert (on
        # PostgreSQL, ``FOR UPDATE`` locks no row that is not there yet): it is there now,
        # and locked while we count on it.
        return await _add_failure(store, key, failure, now)


async def _add_failure(store: Store, key: str, failure: Failure, now: datetime) -> Tally:
    async with store.write() as session:
        current = await session.scalar(
            select(STATE.c.value)
            .where(STATE.c.channel == CHANNEL, STATE.c.key == key)
            .with_for_update()
        )
        before = Tally() if current is None else _tally(current)
        tally = before.add(failure)
        # "failures" counts those of the update's own, as before statement timeouts counted.
        value = {"failures": tally.own, "statement_timeouts": tally.statement_timeouts}
        if current is None:
            await _insert(session, key, value, now)
        else:
            await session.execute(
                update(STATE)
                .where(STATE.c.channel == CHANNEL, STATE.c.key == key)
                .values(value=value, updated_at=now)
            )
    return tally


def _tally(value: dict[str, Any]) -> Tally:
    return Tally(int(value["failures"]), int(value.get("statement_timeouts", 0)))


def _failures_key(update_id: int) -> str:
    return f"{FAILURES_PREFIX}{update_id}"


def _command_key(chat_id: int) -> str:
    return f"{COMMAND_PREFIX}{chat_id}"


def part_key(chat_id: int, message_id: int) -> str:
    """The key naming the outbox row whose delivery sent ``message_id`` in ``chat_id``."""
    return f"part:{chat_id}:{message_id}"


def progress_key(outbox_id: int) -> str:
    """The key holding the parts an unfinished delivery of outbox row ``outbox_id`` sent."""
    return f"{PROGRESS_PREFIX}{outbox_id}"


async def record_parts(
    store: Store,
    chat_id: int,
    outbox_id: int,
    message_ids: list[int],
    now: datetime,
    *,
    progress: list[int] | None = None,
) -> None:
    """Record which outbox row sent each of ``message_ids`` (a delivery's parts after the
    first: a long text's second half, the photo after an answer's text). The row keeps only
    the first message's id, and a customer's "Reply" to a later part found no ticket.

    ``progress``: the delivery stopped part-way, and these are all the parts it has sent
    (kept for the next attempt, :func:`load_progress`); ``[]`` once it has ended, to clear them.
    """
    rows = [
        {
            "channel": CHANNEL,
            "key": part_key(chat_id, message_id),
            "value": {"outbox_id": outbox_id},
            "updated_at": now,
        }
        for message_id in message_ids
    ]
    async with store.write() as session:
        if rows:
            await session.execute(insert(STATE), rows)
        if progress is not None:
            key = progress_key(outbox_id)
            await session.execute(
                delete(STATE).where(STATE.c.channel == CHANNEL, STATE.c.key == key)
            )
            if progress:
                await _insert(session, key, {"message_ids": progress}, now)


async def load_progress(store: Store, outbox_id: int) -> list[int]:
    """The ids of the parts earlier attempts of the row's delivery sent (none: start afresh)."""
    value = await _read(store, progress_key(outbox_id))
    return [int(i) for i in value["message_ids"]] if value else []


async def _read(store: Store, key: str) -> dict[str, Any] | None:
    async with store.read() as session:
        value: dict[str, Any] | None = await session.scalar(
            select(STATE.c.value).where(STATE.c.channel == CHANNEL, STATE.c.key == key)
        )
    return value


async def _record(store: Store, key: str, field: str, value: int, now: datetime) -> None:
    """Set ``{field: value}`` under ``key`` unless it holds that value already."""
    async with store.write() as session:
        current = await session.scalar(
            select(STATE.c.value)
            .where(STATE.c.channel == CHANNEL, STATE.c.key == key)
            .with_for_update()
        )
        if current is None:
            await _insert(session, key, {field: value}, now)
        elif int(current[field]) != value:
            await session.execute(
                update(STATE)
                .where(STATE.c.channel == CHANNEL, STATE.c.key == key)
                .values(value={field: value}, updated_at=now)
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


async def claimed(store: Store, key: str) -> bool:
    """Whether ``key`` was claimed (:func:`claim_once`)."""
    return await _read(store, key) is not None


async def _insert(session: AsyncSession, key: str, value: dict[str, Any], now: datetime) -> None:
    await session.execute(
        insert(STATE).values(channel=CHANNEL, key=key, value=value, updated_at=now)
    )
