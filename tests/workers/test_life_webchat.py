"""A web chat ticket's whole life with real RQ workers: the customer's socket hears every notice
in order and one survey, and rates inline."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient

from channels.webchat.state import WEBCHAT
from gateway.app import create_app
from gateway.appkeys import PIPELINE, STORE
from gateway.store import Store
from knowledge_base.base import NeverMatches
from tests.conftest import make_settings
from tests.factories import Clock
from tests.workers.conftest import Courier, WorkerProcess, open_office
from tests.workers.life import Heard, live

Client = TestClient[web.Request, web.Application]


class ChatCustomer:
    """A customer in the widget: one session, one socket, every frame kept."""

    def __init__(self, client: Client, app: web.Application) -> None:
        self.client = client
        self.app = app
        self.ws: ClientWebSocketResponse | None = None
        self.frames: list[dict[str, Any]] = []
        self.reader: asyncio.Task[None] | None = None
        self.acks: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def open(self) -> None:
        response = await self.client.post("/api/v1/webchat/sessions", json={"locale": "en"})
        assert response.status == 201, await response.text()
        token = (await response.json())["token"]
        self.ws = await self.client.ws_connect(f"/api/v1/webchat/ws?token={token}")
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            frame = json.loads(raw.data)
            self.frames.append(frame)
            waiter = self.acks.pop(str(frame.get("client_id")), None)
            if waiter is not None and frame.get("type") in ("ack", "error"):
                waiter.set_result(frame)

    async def send(self, frame: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        client_id = f"c{len(self.frames)}-{len(self.acks)}-{frame['type']}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[client_id] = waiter
        await self.ws.send_json({**frame, "client_id": client_id})
        answer = await asyncio.wait_for(waiter, 10)
        assert answer["type"] == "ack", answer
        return answer

    async def write(self, text: str) -> None:
        await self.send({"type": "message", "text": text})
        await self.app[PIPELINE].drain()

    async def heard(self, expected: int) -> list[Heard]:
        async with asyncio.timeout(10):
            while True:
                if len(shown := self._shown()) >= expected:
                    return shown
                await asyncio.sleep(0.02)

    def _shown(self) -> list[Heard]:
        return [
            Heard(str(f.get("template") or "message"), str(f["text"]))
            for f in self.frames
            if f.get("type") == "message" and f.get("kind") in ("notice", "reply", "survey")
        ]

    async def rate(self, number: str, score: int, comment: str) -> str | None:
        survey = [f for f in self.frames if f.get("kind") == "survey"]
        assert [f["ticket"] for f in survey] == [number]  # the widget shows its stars here
        await self.send({"type": "rating", "ticket": number, "score": score, "comment": comment})
        return comment

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def test_a_web_chat_ticket_from_first_message_to_a_low_rating(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    db_url: str,
    redis_url: str,
    clock: Clock,
    worker: WorkerProcess,
    make_courier: Callable[[Store], Courier],
) -> None:
    settings = make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False)
    app = create_app(settings, kb=NeverMatches(), clock=clock)
    client = await aiohttp_client(app)
    await asyncio.wait_for(app[WEBCHAT].hub.ready.wait(), 5)
    office = await open_office(app[STORE], clock, settings)
    worker.start(settings)
    customer = ChatCustomer(client, app)
    await customer.open()
    try:
        await live(customer, office, make_courier(app[STORE]))
    finally:
        await customer.close()
