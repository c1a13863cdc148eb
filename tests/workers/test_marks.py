"""The marks of a delivery job (``workers/marks.py``) on both databases: one message at a time
between its hand-over mark and the end of its send, and no hand-over written after its send
gave up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from gateway.models import OutboxStatus
from gateway.store import Store
from gateway.store.tables import OutboxRow
from tests.factories import owed
from workers.marks import Marks, Outcome, marks_for


async def marked(store: Store) -> dict[int, tuple[str, str | None, int]]:
    """Each row's (status, external id, attempts)."""
    async with store.read() as session:
        rows = await session.scalars(select(OutboxRow))
        return {r.id: (r.status, r.external_id, r.attempts) for r in rows}


async def test_a_hand_over_waits_until_the_send_handed_over_before_it_has_ended(
    store: Store,
) -> None:
    first, second = await owed(store, 2)
    answered, first_handed_over = asyncio.Event(), asyncio.Event()
    steps: list[str] = []

    async def send(marks: Marks, outbox_id: int, external_id: str) -> None:
        async with marks.handing_over(outbox_id) as handover:
            steps.append(f"{external_id} before its hand-over")  # the envelope, the content
            await handover(external_id)
            steps.append(f"{external_id} handed over")
            if outbox_id == first:
                first_handed_over.set()
                await answered.wait()  # the peer's answer, while the worker may die
        marks.note(
            Outcome(outbox_id, OutboxStatus.SENT, None, external_id),
            status_now=OutboxStatus.QUEUED.value,
            external_id_now=None,
        )

    async with marks_for(store) as marks:
        one = asyncio.create_task(send(marks, first, "m1"))
        await first_handed_over.wait()
        two = asyncio.create_task(send(marks, second, "m2"))
        await asyncio.sleep(0.3)
        # The second send got as far as its hand-over, and no further: were the worker killed
        # now, only the first message would be marked without the peer's answer.
        assert steps == ["m1 before its hand-over", "m1 handed over", "m2 before its hand-over"]
        assert (await marked(store))[second][1] is None
        answered.set()
        await asyncio.gather(one, two)
    rows = await marked(store)
    assert rows[first] == (OutboxStatus.SENT.value, "m1", 1)
    assert rows[second] == (OutboxStatus.SENT.value, "m2", 1)


async def test_a_hand_over_whose_commit_failed_is_not_written_by_a_later_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed_row, earlier, later = await owed(store, 3)
    async with marks_for(store) as marks:
        commit = marks._commit
        calls = 0

        async def fails_once(*args: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionResetError("the database went away")
            await commit(*args)

        monkeypatch.setattr(marks, "_commit", fails_once)
        marks.note(
            Outcome(earlier, OutboxStatus.SENT, None, "m0"),
            status_now=OutboxStatus.QUEUED.value,
            external_id_now=None,
        )
        async with marks.handing_over(failed_row) as handover:
            with pytest.raises(ConnectionResetError):
                await handover("m1")  # the sender stops here: the peer never has m1
        marks.note(
            Outcome(later, OutboxStatus.FAILED, "550 no such mailbox"),
            status_now=OutboxStatus.QUEUED.value,
            external_id_now=None,
        )
        await marks.sync()
    rows = await marked(store)
    # Had m1's mark been written now, the retry would take m1 as delivered: lost.
    assert rows[failed_row] == (OutboxStatus.PENDING.value, None, 0)
    assert rows[earlier] == (OutboxStatus.SENT.value, "m0", 1)  # put back, then written
    assert rows[later] == (OutboxStatus.FAILED.value, None, 1)
