"""Outbound against Telegram's flood control: the bot's own rate, 429s waited out or handed
back to the queue with their delay, and a delivery killed while it waits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from channels.base import TransientChannelError
from channels.telegram.sender import TelegramSender
from gateway.outbox_admin import retry_row
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import OutboxRow
from tests.channels.telegram.conftest import Gateway, outbox, telegram_settings
from tests.channels.telegram.deliveries import as_agent_reply, first_notice, outbound
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from workers.jobs import DEFER_AT_MOST, deliver_async, deliver_many


async def test_a_429_with_retry_after_delays_and_then_delivers(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    started = time.monotonic()
    assert await deliver_async(row.id, settings) == "sent"
    assert time.monotonic() - started >= 1.0
    first, second = fake.calls_of("sendMessage")
    assert second.at - first.at >= 1.0
    assert [s["chat_id"] for s in fake.sent] == [888]
    assert (await outbox(db))[0].status == "sent"


async def test_one_bot_keeps_to_its_rate_across_chats(
    fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    """python-telegram-bot's rate limiter paces a worker's kept bot: ten notices to ten chats
    at 5 a second leave over about a second (five at once, then one every 0.2 s).

    Timed from before the first send, not from the first arrival: the first requests may
    arrive late (a connection opened on a busy machine), the last cannot arrive early."""
    settings = telegram_settings(fake, db_url, redis_url, tmp_path, rate_per_second=5)
    sender = TelegramSender(settings)
    await sender.open()
    started = time.monotonic()  # the fake stamps arrivals with the same clock
    try:
        await asyncio.gather(
            *(
                sender.send(outbound(f"notice {n}", outbox_id=n, recipient=str(1000 + n)))
                for n in range(10)
            )
        )
    finally:
        await sender.aclose()
    times = sorted(call.at for call in fake.calls_of("sendMessage"))
    assert len(times) == 10
    assert times[-1] - started >= 0.95
    assert sorted(s["chat_id"] for s in fake.sent) == list(range(1000, 1010))


async def test_a_long_retry_after_goes_back_to_the_queue_with_its_delay(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30)
    asked_at = time.time()
    assert await deliver_async(row.id, settings) == "deferred: Telegram flood control"
    deferred = (await outbox(db))[0]
    assert deferred.status == "pending"  # the relay queues it again once due
    assert abs(deferred.due_at.timestamp() - (asked_at + 30)) < 5
    assert await deliver_async(row.id, settings) == "sent"
    assert len(fake.sent) == 1


async def test_flood_control_before_anything_went_goes_back_to_the_queue(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    with pytest.raises(TransientChannelError):
        await deliver_async(row.id, settings)
    assert fake.sent == []


async def test_an_admins_retry_gives_the_row_its_deferrals_back(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """A row parked after Telegram's flood control outlasted its deferrals kept its tries
    through "outbox retry": the retried row met the next long 429 with RQ's short retries
    (5 s, 30 s...) instead of waiting as Telegram asked, and was parked again."""
    row = await first_notice(gateway, db)
    async with db.write() as session:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row.id)
            .values(status="failed", attempts=DEFER_AT_MOST + 3, last_error="flood control")
        )
    assert await retry_row(db, row.id)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 600", retry_after=600)
    assert await deliver_async(row.id, settings) == "deferred: Telegram flood control"
    [stored] = [r for r in await outbox(db) if r.id == row.id]
    assert (stored.status, stored.attempts) == ("pending", 1)


async def test_long_flood_control_defers_the_contacts_rows_till_when_telegram_asked(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """A 429 asking for ten minutes went back to RQ, whose next try came 5 s later into the
    same flood control (then 30 s, 2 min...), using up tries the rows may need."""
    await first_notice(gateway, db)
    first, second = (await outbox(db))[:2]
    await as_agent_reply(db, first, "1. Restart the router.")
    await as_agent_reply(db, second, "2. Then press reset.")
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 600", retry_after=600)
    asked_at = time.time()
    done = await deliver_many([first.id, second.id], settings)  # no exception: RQ is done
    assert done == {
        first.id: "deferred: Telegram flood control",
        second.id: f"deferred after outbox {first.id}",
    }
    assert fake.sent == []
    rows = {r.id: r for r in await outbox(db)}
    assert {rows[i].status for i in (first.id, second.id)} == {"pending"}
    assert (rows[first.id].attempts, rows[second.id].attempts) == (1, 0)
    assert rows[first.id].last_error == "Telegram flood control"
    for outbox_id in (first.id, second.id):
        assert abs(rows[outbox_id].due_at.timestamp() - (asked_at + 600)) < 5
    # When due, the relay queues them again, in order:
    await deliver_many([first.id, second.id], settings)
    assert [s["text"] for s in fake.sent] == ["1. Restart the router.", "2. Then press reset."]


async def killed_in_a_wait(
    row: OutboxRow, fake: FakeBotAPI, settings: Settings, calls: int
) -> None:
    """Deliver ``row`` and kill the delivery once ``calls`` sendMessage calls were made and the
    sender is waiting out Telegram's flood control (a kill leaves the database the same)."""
    job = asyncio.create_task(deliver_async(row.id, settings))
    for _ in range(500):
        if len(fake.calls_of("sendMessage")) >= calls:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # within the 2 s wait
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


async def test_a_kill_while_waiting_out_flood_control_does_not_lose_the_message(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """Telegram refused the request (429, retry after 2 s), so nothing went; yet the row kept
    its hand-over mark through the wait, and the retry after a kill took it as delivered."""
    row = await first_notice(gateway, db)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
    await killed_in_a_wait(row, fake, settings, calls=1)
    assert (await outbox(db))[0].external_id is None  # the mark withdrawn before the wait
    assert await deliver_async(row.id, settings) == "sent"  # RQ's retry
    assert len(fake.sent) == 1


async def test_a_kill_while_a_later_part_waits_out_flood_control_resumes_after_the_first(
    gateway: Gateway, db: Store, fake: FakeBotAPI, settings: Settings
) -> None:
    """The first part went, the second met flood control: a kill in the wait lost the second
    (the retry took the row as delivered). Now the part sent is recorded before the wait."""
    row = await first_notice(gateway, db)
    await as_agent_reply(db, row, "A" * 3000 + "\n\n" + "B" * 3000)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2, after=1)
    await killed_in_a_wait(row, fake, settings, calls=2)
    assert await deliver_async(row.id, settings) == "sent"
    assert [s["text"][0] for s in fake.sent] == ["A", "B"]
    [stored] = [r for r in await outbox(db) if r.id == row.id]
    assert stored.external_id == str(fake.sent[0]["message_id"])
