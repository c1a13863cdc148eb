"""Fixtures for the Telegram channel: the fake Bot API on loopback and the gateway against it."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from gateway.app import create_app
from gateway.appkeys import METRICS
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import (
    Contact,
    ContactIdentity,
    OutboxRow,
    Ticket,
    TicketMessage,
)
from knowledge_base.base import Answer, KnowledgeBase, NeverMatches, Verdict
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.conftest import make_settings
from tests.factories import Clock
from workers.jobs import deliver_async

# The helper modules the tests import assert too: keep pytest's detailed messages for them.
pytest.register_assert_rewrite(
    "tests.channels.telegram.private_chat", "tests.channels.telegram.deliveries"
)

TOKEN = "123456:TEST-token-never-in-logs"
WEBHOOK_SECRET = "hook-secret-0123456789"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "telegram"
WEBHOOK = "/channels/telegram/webhook"

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
MakeServer = Callable[[web.Application], Awaitable[TestServer]]
Gateway = tuple[web.Application, Client]
MakeGateway = Callable[..., Awaitable[Gateway]]


class AlwaysAnswers:
    """A knowledge base sure of one answer (so the bot answers and nothing escalates)."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        return Answer("shipping", "When does my order ship?", "Orders ship within 48 hours.", 0.99)


class AsksRecorded(AlwaysAnswers):
    """Answers anything, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        self.asked.append(text)
        return await super().match(text, locale=locale)


def load_fixture(name: str) -> dict[str, Any]:
    """An update payload from ``tests/fixtures/telegram/<name>.json`` (a fresh copy)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def private_text_with(**fields: Any) -> dict[str, Any]:
    """The ``private_text`` update, its message's ``fields`` replaced."""
    update = load_fixture("private_text")
    update["message"].update(fields)
    return update


def sent_again(name: str) -> dict[str, Any]:
    """The fixture's message sent once more by the user: the next update and message ids."""
    update = load_fixture(name)
    update["update_id"] += 1
    update["message"]["message_id"] += 1
    return update


async def post_update(
    client: Client, update: dict[str, Any], *, secret: str | None = WEBHOOK_SECRET
) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    response = await client.post(WEBHOOK, json=update, headers=headers)
    await response.read()
    return response.status


async def post_fixture(client: Client, name: str) -> int:
    return await post_update(client, load_fixture(name))


@pytest.fixture
async def fake(aiohttp_server: MakeServer) -> FakeBotAPI:
    api = FakeBotAPI(TOKEN)
    server = await aiohttp_server(api.app)
    assert server.port is not None
    api.port = server.port
    return api


def telegram_settings(
    fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path, **telegram: Any
) -> Settings:
    section: dict[str, Any] = {
        "enabled": True,
        "token": TOKEN,
        "webhook_secret": WEBHOOK_SECRET,
        "base_url": f"http://127.0.0.1:{fake.port}",
        "attachment_dir": str(tmp_path / "attachments"),
        "max_retry_wait": 2.0,
    }
    section.update(telegram)
    return make_settings(
        telegram=section, database_url=db_url, redis_url=redis_url, outbox_relay=False
    )


@pytest.fixture
def settings(fake: FakeBotAPI, db_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return telegram_settings(fake, db_url, redis_url, tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_gateway(aiohttp_client: MakeClient, clock: Clock) -> MakeGateway:
    async def make(settings: Settings, *, kb: KnowledgeBase | None = None) -> Gateway:
        app = create_app(settings, kb=kb or NeverMatches(), clock=clock)
        return app, await aiohttp_client(app)

    return make


@pytest.fixture
async def gateway(settings: Settings, make_gateway: MakeGateway) -> Gateway:
    return await make_gateway(settings)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Store]:
    store = Store(settings.database_url)
    yield store
    await store.close()


async def count(store: Store, model: type[Any]) -> int:
    async with store.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def messages(store: Store) -> list[TicketMessage]:
    async with store.read() as session:
        return list((await session.scalars(select(TicketMessage).order_by(TicketMessage.id))).all())


async def tickets(store: Store) -> list[Ticket]:
    async with store.read() as session:
        return list((await session.scalars(select(Ticket).order_by(Ticket.id))).all())


async def contacts(store: Store) -> list[Contact]:
    async with store.read() as session:
        return list((await session.scalars(select(Contact).order_by(Contact.id))).all())


async def identities(store: Store) -> list[ContactIdentity]:
    async with store.read() as session:
        return list(
            (await session.scalars(select(ContactIdentity).order_by(ContactIdentity.id))).all()
        )


async def outbox(store: Store) -> list[OutboxRow]:
    async with store.read() as session:
        return list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())


async def deliver_all(store: Store, settings: Settings) -> list[str]:
    """Run the real delivery job on every outbox row, in order."""
    return [await deliver_async(row.id, settings) for row in await outbox(store)]


def rejected(app: web.Application, reason: str) -> float:
    """``gateway_messages_rejected_total{channel="telegram", reason=...}``"""
    value = app[METRICS].rejected.labels(channel="telegram", reason=reason)._value.get()
    return float(value)
