"""The sweep of the channel's ``channel_state`` records (``channels/telegram/retention.py``):
records past their use go, in batches; those a Reply, a redelivery or a retry still needs stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from channels.telegram.conversations import replied_ticket
from channels.telegram.retention import KEPT_FOR, sweep_state
from channels.telegram.state import (
    STATE,
    claim_once,
    command_answered,
    count_failure,
    load_offset,
    load_progress,
    record_answered,
    record_parts,
    save_offset,
)
from gateway.models import OutboxStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow, Ticket
from tests.factories import NOON, owed

LONG_AGO = NOON - KEPT_FOR - timedelta(hours=1)
LATELY = NOON - timedelta(hours=1)
CHAT = 4242


async def keys(store: Store) -> set[str]:
    async with store.read() as session:
        return set((await session.scalars(select(STATE.c.key))).all())


async def settle(store: Store, outbox_id: int, status: OutboxStatus) -> None:
    async with store.write() as session:
        await session.execute(
            update(OutboxRow).where(OutboxRow.id == outbox_id).values(status=status.value)
        )


async def test_an_update_that_failed_once_then_succeeded_leaves_no_counter_for_good(
    store: Store,
) -> None:
    """The leak this sweep is for: each webhook update that failed once kept its counter."""
    for update_id in range(1, 6):
        await count_failure(store, update_id, LONG_AGO)
    assert (await count_failure(store, 6, LATELY)).own == 1  # may still come again: kept

    removed = await sweep_state(store, NOON, batch=2)  # three batches, not one long write

    assert removed == 5
    assert await keys(store) == {"failures:6"}
    assert (await count_failure(store, 6, NOON)).own == 2  # its count goes on


async def test_records_past_their_use_go_and_those_still_needed_stay(store: Store) -> None:
    sent, failed, pending = await owed(store, 3)
    await save_offset(store, 1000, LONG_AGO)
    await record_answered(store, CHAT, 900, LONG_AGO)  # Telegram redelivers for 24 h at most
    await record_answered(store, CHAT + 1, 999, LATELY)
    assert await claim_once(store, f"group_explained:{-CHAT}", {"update_id": 1}, LONG_AGO)
    # Each delivery stopped part-way long ago, after its first two parts.
    for outbox_id in (sent, failed, pending):
        parts = [outbox_id * 10, outbox_id * 10 + 1]
        await record_parts(store, CHAT, outbox_id, parts, LONG_AGO, progress=parts)
    # ``sent``'s next attempt delivered it, and clearing its progress failed (only logged).
    await settle(store, sent, OutboxStatus.SENT)
    await settle(store, failed, OutboxStatus.FAILED)  # an admin may send it again

    assert await sweep_state(store, NOON) == 2

    assert await keys(store) == {
        "offset",
        f"command:{CHAT + 1}",
        f"group_explained:{-CHAT}",
        *(f"part:{CHAT}:{i * 10 + n}" for i in (sent, failed, pending) for n in (0, 1)),
        f"progress:{failed}",
        f"progress:{pending}",
    }
    assert await load_offset(store) == 1000
    assert await command_answered(store, CHAT + 1, 999)
    # A retry of what is still owed sends only the parts not yet sent...
    assert await load_progress(store, failed) == [failed * 10, failed * 10 + 1]
    assert await load_progress(store, pending) == [pending * 10, pending * 10 + 1]
    # ...and a customer's Reply to a later part of an old delivery still finds its ticket.
    async with store.read() as session:
        number = await session.scalar(
            select(Ticket.number)
            .join(OutboxRow, OutboxRow.ticket_id == Ticket.id)
            .where(OutboxRow.id == sent)
        )
        assert await replied_ticket(session, CHAT, sent * 10 + 1) == number
    assert not await claim_once(store, f"group_explained:{-CHAT}", {"update_id": 2}, NOON)
