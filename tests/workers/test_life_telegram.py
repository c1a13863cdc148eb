"""A Telegram ticket's whole life with real RQ workers against the Bot API stand-in: every notice
in order, one survey with the 1-5 keyboard, and the star press reaching the ticket."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.appkeys import PIPELINE, STORE
from gateway.store import Store
from knowledge_base.base import NeverMatches
from tests.channels.telegram.conftest import load_fixture, post_update, telegram_settings
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.factories import Clock
from tests.workers.conftest import Courier, WorkerProcess, open_office, outbox
from tests.workers.life import Heard, live

Client = TestClient[web.Request, web.Application]
CHAT = 888  # the private chat of tests/fixtures/telegram/private_text.json

_updates = itertools.count(2000)


class TelegramCustomer:
    def __init__(self, client: Client, app: web.Application, fake: FakeBotAPI) -> None:
        self.client = client
        self.app = app
        self.fake = fake

    async def write(self, text: str) -> None:
        update = load_fixture("private_text")
        n = next(_updates)
        update["update_id"] = n
        update["message"]["message_id"] = n
        update["message"]["text"] = text
        assert await post_update(self.client, update) == 200
        await self.app[PIPELINE].drain()

    async def heard(self, expected: int) -> list[Heard]:
        sent = await self.fake.wait_sent(expected, within=10)
        # Each message the bot sent names its outbox row: the row's receipt is its message id.
        by_receipt = {r.external_id: r.template for r in await outbox(self.app[STORE])}
        assert all(int(s["chat_id"]) == CHAT for s in sent)
        return [Heard(by_receipt[str(s["message_id"])], str(s["text"])) for s in sent]

    async def rate(self, number: str, score: int, comment: str) -> str | None:
        [survey] = [s for s in self.fake.sent if "reply_markup" in s and number in s["text"]]
        buttons = [b["callback_data"] for row in survey["reply_markup"]["inline_keyboard"]
                   for b in row]  # fmt: skip
        assert buttons == [f"r:{number}:{n}" for n in range(1, 6)]
        update = load_fixture("callback_query")
        update["update_id"] = next(_updates)
        query = update["callback_query"]
        query["data"] = buttons[score - 1]
        query["message"]["message_id"] = survey["message_id"]
        assert await post_update(self.client, update) == 200
        async with asyncio.timeout(5):  # the press is answered once it is recorded
            while True:
                if self.fake.calls_of("answerCallbackQuery"):
                    break
                await asyncio.sleep(0.02)
        return None  # a star press carries no comment


async def test_a_telegram_ticket_from_first_message_to_a_low_rating(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    fake: FakeBotAPI,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    clock: Clock,
    worker: WorkerProcess,
    make_courier: Callable[[Store], Courier],
) -> None:
    settings = telegram_settings(fake, db_url, redis_url, tmp_path)
    app = create_app(settings, kb=NeverMatches(), clock=clock)
    client = await aiohttp_client(app)
    office = await open_office(app[STORE], clock, settings)
    worker.start(settings)
    await live(TelegramCustomer(client, app, fake), office, make_courier(app[STORE]))
