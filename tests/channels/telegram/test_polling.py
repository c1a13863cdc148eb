"""Polling mode end to end, including a restart between a commit and the offset moving."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from telegram.error import BadRequest

from channels.telegram import polling, state
from channels.telegram.state import load_offset
from gateway.backoff import Backoff
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ParkedInbound, TicketMessage
from gateway.store.types import utcnow
from tests.channels.telegram.conftest import (
    MakeGateway,
    count,
    load_fixture,
    messages,
    rejected,
    telegram_settings,
)
from tests.channels.telegram.fake_bot_api import FakeBotAPI


def update(n: int) -> dict[str, Any]:
    u = load_fixture("private_text")
    u["update_id"] = 500 + n
    u["message"]["message_id"] = 100 + n
    u["message"]["text"] = f"message {n}"
    return u


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


@pytest.fixture
def polling_settings(fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """The channel in polling mode against the fake Bot API (no webhook, 1 s long polls)."""
    return telegram_settings(
        fake, db_url, redis_url, tmp_path, mode="polling", webhook_secret=None, poll_timeout=1
    )


async def test_polling_end_to_end_with_a_restart_in_the_middle(
    fake: FakeBotAPI,
    polling_settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first process dies after committing update 2 and before its offset is written.
    real_save = state.save_offset
    crashed = asyncio.Event()

    async def dies_before_saving(store: Store, offset: int, now: datetime) -> None:
        if offset == 503:
            crashed.set()
            await asyncio.Event().wait()  # hangs until the process is stopped
        await real_save(store, offset, now)

    monkeypatch.setattr(polling, "save_offset", dies_before_saving)
    for n in (1, 2, 3):
        fake.push_update(update(n))
    _, first = await make_gateway(polling_settings)
    await asyncio.wait_for(crashed.wait(), 30)
    assert await count(db, TicketMessage) == 2
    assert await load_offset(db) == 502  # update 2 committed, not yet confirmed
    await first.close()  # the restart

    monkeypatch.setattr(polling, "save_offset", real_save)
    for n in (4, 5):
        fake.push_update(update(n))
    _, second = await make_gateway(polling_settings)

    async def all_in() -> bool:
        return await count(db, TicketMessage) == 5 and await load_offset(db) == 506

    await wait_for(all_in)
    assert [m.text for m in await messages(db)] == [f"message {n}" for n in range(1, 6)]
    assert [c.method for c in fake.calls][:1] == ["deleteWebhook"]
    # Update 2 came twice (committed, not confirmed) and was stored once.
    offsets = [c.params.get("offset") for c in fake.calls_of("getUpdates")]
    assert offsets[0] is None and 502 in offsets
    await wait_for(lambda: _confirmed(fake))
    await second.close()


async def test_two_processes_poll_one_at_a_time_and_the_second_takes_over(
    fake: FakeBotAPI,
    polling_settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Telegram serves one getUpdates at a time: two polling processes cut each other off
    (409 Conflict), and each could carry out the same command before saving its offset. The
    polling lease lets one poll; the other takes over when it stops."""
    monkeypatch.setattr(polling, "LEASE_RETRY_SECONDS", 0.2)
    for n in (1, 2):
        fake.push_update(update(n))
    _, first = await make_gateway(polling_settings)
    await wait_for(lambda: _stored(db, 2))
    _, second = await make_gateway(polling_settings)

    async def held(client: Any) -> str:
        metrics: str = await (await client.get("/metrics")).text()
        return next(x for x in metrics.splitlines() if x.startswith("gateway_telegram_polling"))

    for n in (3, 4, 5):
        fake.push_update(update(n))
        await asyncio.sleep(0.3)  # the second process asks for the lease meanwhile
    await wait_for(lambda: _stored(db, 5))
    assert await held(first) == "gateway_telegram_polling_lease_held 1.0"
    assert await held(second) == "gateway_telegram_polling_lease_held 0.0"
    await first.close()
    for n in (6, 7):
        fake.push_update(update(n))
    await wait_for(lambda: _stored(db, 7))
    assert await held(second) == "gateway_telegram_polling_lease_held 1.0"
    assert [m.text for m in await messages(db)] == [f"message {n}" for n in range(1, 8)]
    assert fake.poll_conflicts == 0
    await second.close()


async def _stored(db: Store, n: int) -> bool:
    return await count(db, TicketMessage) == n


async def _confirmed(fake: FakeBotAPI) -> bool:
    return fake.pending_updates == []


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(RuntimeError("a bug"), id="bug"),
        # PTB's BadRequest is a NetworkError: it was retried forever, every chat waiting.
        pytest.param(BadRequest("Bad Request: message text is empty"), id="refused"),
    ],
)
async def test_a_failing_update_is_retried_then_parked_and_polling_goes_on(
    fake: FakeBotAPI,
    polling_settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    from sqlalchemy import select

    from channels.telegram.inbound import TelegramInbound
    from gateway.store.tables import ParkedInbound

    monkeypatch.setattr(polling, "MAX_ATTEMPTS", 2)
    real_handle = TelegramInbound.handle

    async def poison(self: TelegramInbound, u: dict[str, Any]) -> None:
        if u["update_id"] == 501:
            raise failure
        await real_handle(self, u)

    monkeypatch.setattr(TelegramInbound, "handle", poison)
    fake.push_update(update(1))
    fake.push_update(update(2))
    _, client = await make_gateway(polling_settings)

    async def done() -> bool:
        return await load_offset(db) == 503

    await wait_for(done)
    assert [m.text for m in await messages(db)] == ["message 2"]
    async with db.read() as session:
        [parked] = (await session.scalars(select(ParkedInbound))).all()
    assert (parked.external_id, parked.reason) == ("update:501", "failed")
    assert b"message 1" in parked.raw
    await client.close()


async def test_a_file_server_blip_longer_than_the_attempts_delays_the_update_but_loses_nothing(
    fake: FakeBotAPI,
    polling_settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """getFile failing more often than an update may fail for a reason of its own: the photo
    used to be parked, where nothing reads it back, and its offset confirmed (lost)."""
    monkeypatch.setattr(polling, "MAX_ATTEMPTS", 2)
    monkeypatch.setattr(polling, "Backoff", lambda **_: Backoff(base=0.01, cap=0.02))
    fake.add_file("photo-big", b"\xff\xd8jpeg bytes", "photos/file_7.jpg")
    for _ in range(4):
        fake.fail_next("getFile", 502, "Bad Gateway")
    photo = load_fixture("photo_with_caption")
    fake.push_update(photo)
    next_offset = int(photo["update_id"]) + 1
    _, client = await make_gateway(polling_settings)

    async def done() -> bool:
        return await load_offset(db) == next_offset

    await wait_for(done)
    [message] = await messages(db)
    assert message.text == "收到的商品外壳破了" and message.attachments[0]["size"] == 12
    assert len(fake.calls_of("getFile")) == 5
    async with db.read() as session:
        assert (await session.scalars(select(ParkedInbound))).all() == []
    await client.close()


async def test_flood_control_on_a_file_waits_as_asked_and_loses_nothing(
    fake: FakeBotAPI,
    polling_settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 429 is no fault of the update's: it used to count as one, and after the attempts
    the photo was parked, where nothing reads it back."""
    monkeypatch.setattr(polling, "MAX_ATTEMPTS", 2)
    monkeypatch.setattr(polling, "Backoff", lambda **_: Backoff(base=0.01, cap=0.02))
    fake.add_file("photo-big", b"\xff\xd8jpeg bytes", "photos/file_7.jpg")
    for _ in range(3):
        fake.fail_next("getFile", 429, "Too Many Requests: retry after 1", retry_after=1)
    photo = load_fixture("photo_with_caption")
    fake.push_update(photo)
    _, client = await make_gateway(polling_settings)

    await wait_for(lambda: _offset_is(db, int(photo["update_id"]) + 1))
    [message] = await messages(db)
    assert message.attachments[0]["size"] == 12
    calls = [c.at for c in fake.calls_of("getFile")]
    assert len(calls) == 4
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(calls))  # waited as asked
    async with db.read() as session:
        assert (await session.scalars(select(ParkedInbound))).all() == []
    await client.close()


async def test_polling_survives_the_database_failing_for_a_moment(
    fake: FakeBotAPI,
    polling_settings: Settings,
    make_gateway: MakeGateway,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_save = state.save_offset
    failures = iter([ConnectionError("database went away")])

    async def flaky(store: Store, offset: int, now: datetime) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        await real_save(store, offset, now)

    monkeypatch.setattr(polling, "save_offset", flaky)
    for n in (1, 2):
        fake.push_update(update(n))
    _, client = await make_gateway(polling_settings)

    async def done() -> bool:
        return await load_offset(db) == 503

    await wait_for(done)
    assert [m.text for m in await messages(db)] == ["message 1", "message 2"]
    await client.close()


async def test_an_offset_from_before_telegram_renumbered_its_updates_loses_none_on_restart(
    fake: FakeBotAPI, polling_settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """After a week without updates Telegram numbers the next ones afresh, maybe below the
    stored offset (https://core.telegram.org/bots/api#update). The offset must follow: kept at
    the old, higher value, a restart once the new ids came within 10 of it asked from it, and
    the server confirmed the updates that arrived while the gateway was down, unread."""
    await state.save_offset(db, 1000, utcnow())  # the old numbering's
    for n in range(480, 485):  # updates 980-984: more than 10 below it, served from the head
        fake.push_update(update(n))
    _, first = await make_gateway(polling_settings)

    async def read_and_confirmed() -> bool:
        return await count(db, TicketMessage) == 5 and await _confirmed(fake)

    await wait_for(read_and_confirmed)
    await wait_for(lambda: _offset_is(db, 985))
    await first.close()

    for n in range(485, 493):  # 985-992 arrive while the gateway is down
        fake.push_update(update(n))
    _, second = await make_gateway(polling_settings)

    async def all_in() -> bool:
        return await count(db, TicketMessage) == 13

    await wait_for(all_in)
    assert [m.text for m in await messages(db)] == [f"message {n}" for n in range(480, 493)]
    await wait_for(lambda: _offset_is(db, 993))
    await second.close()


async def _offset_is(db: Store, offset: int) -> bool:
    return await load_offset(db) == offset


async def test_an_update_python_telegram_bot_cannot_parse_does_not_stop_polling_forever(
    fake: FakeBotAPI, polling_settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """``Bot.get_updates`` parses the whole batch into ``Update`` objects: one update it could
    not parse (a string where an object belongs) failed every poll, and no later update of any
    chat was ever read. The webhook counts and acknowledges the same update."""
    malformed = update(1)
    malformed["message"]["from"] = "x"
    fake.push_update(malformed)
    fake.push_update(update(2))
    app, client = await make_gateway(polling_settings)

    await wait_for(lambda: _offset_is(db, 503), within=10)
    assert [m.text for m in await messages(db)] == ["message 2"]
    assert rejected(app, "malformed_update") == 1
    await client.close()


async def test_flood_control_on_get_updates_waits_as_asked(
    fake: FakeBotAPI, polling_settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    """A 429 on getUpdates was no case of its own: it ended the polling loop, logged as a
    failure with a traceback, and the next poll came after the backoff's half second, not
    after the wait Telegram asked for (flood control answers that with a longer ban)."""
    fake.fail_next("getUpdates", 429, "Too Many Requests: retry after 2", retry_after=2)
    fake.push_update(update(1))
    _, client = await make_gateway(polling_settings)

    await wait_for(lambda: _offset_is(db, 502), within=10)
    first, second = (c.at for c in fake.calls_of("getUpdates")[:2])
    assert second - first >= 1.95
    assert [m.text for m in await messages(db)] == ["message 1"]
    await client.close()


async def test_flood_control_on_delete_webhook_waits_as_asked(
    fake: FakeBotAPI, polling_settings: Settings, make_gateway: MakeGateway, db: Store
) -> None:
    # Polling starts with deleteWebhook; a 429 there was logged as a failure with a traceback
    # and retried after the backoff's half second.
    fake.fail_next("deleteWebhook", 429, "Too Many Requests: retry after 2", retry_after=2)
    fake.push_update(update(1))
    _, client = await make_gateway(polling_settings)

    await wait_for(lambda: _offset_is(db, 502), within=10)
    first, second = (c.at for c in fake.calls_of("deleteWebhook")[:2])
    assert second - first >= 1.95
    await client.close()
