"""The web chat against the real app: PostgreSQL or SQLite, a private Redis, real sockets.

``chat`` starts ``create_app`` with a tiny knowledge base and no outbox relay; its ``courier``
plays the RQ worker, delivering pending outbox rows with ``workers.jobs.deliver_async`` (the
real job body: it builds the :class:`OutboundMessage` and calls ``SENDERS[channel].send``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from channels.webchat.state import WEBCHAT
from gateway.app import create_app
from gateway.appkeys import PIPELINE, STORE
from gateway.models import REPLY_TO_MESSAGE, AuthorType, Channel, MessageKind, OutboxStatus
from gateway.outbox import owe_reply
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Agent, OutboxRow, Ticket, TicketMessage
from gateway.store.types import utcnow
from gateway.tasks import running
from knowledge_base.base import Answer, Decline, Verdict
from tests.conftest import make_settings
from workers.jobs import deliver_async

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

REFUND_EN = "Refunds reach your account in 1-5 working days."
REFUND_ZH = "退款1至5个工作日原路到账。"


class TinyKB:
    """Answers refund questions, declines the rest (people take those)."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        if "refund" in text.lower() or "退款" in text:
            answer = REFUND_ZH if (locale or "").startswith("zh") else REFUND_EN
            return Answer(entry_id="refund", title="refund timing", answer=answer, score=0.9)
        return Decline()


@dataclass
class Chat:
    """The running app, its test client and settings."""

    app: web.Application
    client: Client
    settings: Settings

    @property
    def store(self) -> Store:
        return self.app[STORE]

    async def session(self, **prechat: Any) -> tuple[str, int]:
        response = await self.client.post("/api/v1/webchat/sessions", json=prechat)
        assert response.status == 201, await response.text()
        body = await response.json()
        return body["token"], body["contact_id"]

    async def connect(self, token: str, **kwargs: Any) -> ClientWebSocketResponse:
        ws: ClientWebSocketResponse = await self.client.ws_connect(
            f"/api/v1/webchat/ws?token={token}", **kwargs
        )
        return ws

    async def drain(self) -> None:
        await self.app[PIPELINE].drain()


async def receive(ws: ClientWebSocketResponse, *, wait: float = 5.0) -> dict[str, Any]:
    frame = json.loads(await ws.receive_str(timeout=wait))
    assert isinstance(frame, dict)
    return frame


async def receive_until(
    ws: ClientWebSocketResponse, predicate: Callable[[dict[str, Any]], bool], *, wait: float = 10
) -> dict[str, Any]:
    """The first frame matching ``predicate`` (others are skipped)."""
    async with asyncio.timeout(wait):
        while True:
            frame = await receive(ws, wait=wait)
            if predicate(frame):
                return frame


def message(text: str, client_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "client_id": client_id or str(uuid.uuid4()), "text": text, **extra}


async def stored_count(store: Store, **where: Any) -> int:
    async with store.read() as session:
        query = select(func.count()).select_from(TicketMessage)
        for column, value in where.items():
            query = query.where(getattr(TicketMessage, column) == value)
        return int(await session.scalar(query) or 0)


async def incoming_count(store: Store) -> int:
    return await stored_count(store, kind=MessageKind.INCOMING.value)


_agents = itertools.count(1)


async def agent_reply(
    store: Store,
    ticket_number: str,
    text: str,
    *,
    name: str = "Li Lei",
    reply_to: int | None = None,
) -> int:
    """What the agent API (issue 4) will do: an agent's reply and its outbox row, one transaction;
    ``reply_to``: the customer's message it answers.

    Returns the outbox row id. Replace with a call to the agent API once it exists.
    """
    async with store.write() as session:
        now = utcnow()
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == ticket_number))).one()
        agent = Agent(
            email=f"agent{next(_agents)}-{uuid.uuid4().hex[:6]}@example.com",
            name=name,
            role="agent",
            password_hash="-",
            must_change_password=False,
            active=True,
            created_at=now,
        )
        session.add(agent)
        await session.flush()
        reply = TicketMessage(
            ticket_id=ticket.id,
            kind=MessageKind.OUTGOING.value,
            author_type=AuthorType.AGENT.value,
            author_id=agent.id,
            channel=ticket.channel,
            text=text,
            attachments=[],
            channel_meta={} if reply_to is None else {REPLY_TO_MESSAGE: reply_to},
            created_at=now,
        )
        session.add(reply)
        await session.flush()
        row = owe_reply(session, ticket, reply.id, now)
        await session.flush()
        return row.id


async def stored_message(
    store: Store,
    ticket_number: str,
    text: str,
    *,
    kind: MessageKind,
    author: AuthorType,
    message_id: int | None = None,
    created_at: datetime | None = None,
) -> None:
    """Commit a message on the ticket numbered ``ticket_number`` (an explicit id if given)."""
    async with store.write() as session:
        ticket = (await session.scalars(select(Ticket).where(Ticket.number == ticket_number))).one()
        session.add(
            TicketMessage(
                id=message_id,
                ticket_id=ticket.id,
                kind=kind.value,
                author_type=author.value,
                channel=ticket.channel,
                text=text,
                attachments=[],
                channel_meta={},
                created_at=created_at or utcnow(),
            )
        )


async def internal_note(store: Store, ticket_number: str, text: str) -> None:
    await stored_message(store, ticket_number, text, kind=MessageKind.NOTE, author=AuthorType.AGENT)


async def courier(settings: Settings, store: Store, *, every: float = 0.05) -> None:
    """Plays the RQ worker: delivers every pending outbox row through the real job body."""
    while running():
        async with store.read() as session:
            ids = (
                await session.scalars(
                    select(OutboxRow.id)
                    .where(OutboxRow.status == OutboxStatus.PENDING.value)
                    .order_by(OutboxRow.id)
                )
            ).all()
        for outbox_id in ids:
            await deliver_async(outbox_id, settings)
        await asyncio.sleep(every)


async def delivered(store: Store, *, wait: float = 10) -> None:
    """Wait until the courier has delivered every outbox row."""
    async with asyncio.timeout(wait):
        while True:
            async with store.read() as session:
                pending = await session.scalar(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(OutboxRow.status == OutboxStatus.PENDING.value)
                )
            if not pending:
                return
            await asyncio.sleep(0.05)


def chat_settings(db_url: str, redis_url: str, **overrides: Any) -> Settings:
    return make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False, **overrides)


@pytest.fixture
async def make_chat(
    aiohttp_client: MakeClient, db_url: str, redis_url: str
) -> AsyncIterator[Callable[..., Awaitable[Chat]]]:
    tasks: list[asyncio.Task[None]] = []

    async def make(*, deliver: bool = True, **overrides: Any) -> Chat:
        settings = chat_settings(db_url, redis_url, **overrides)
        app = create_app(settings, kb=TinyKB())
        client = await aiohttp_client(app)
        await asyncio.wait_for(app[WEBCHAT].hub.ready.wait(), 5)
        if deliver:
            tasks.append(asyncio.create_task(courier(settings, app[STORE])))
        return Chat(app, client, settings)

    yield make
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def chat(make_chat: Callable[..., Awaitable[Chat]]) -> Chat:
    return await make_chat()


async def escalated_webchat_ticket(store: Store) -> str:
    """The number of the web chat ticket that escalated (to a person), once one has."""
    async with asyncio.timeout(10):
        while True:
            async with store.read() as session:
                number = await session.scalar(
                    select(Ticket.number).where(
                        Ticket.channel == Channel.WEBCHAT.value, Ticket.escalated_at.is_not(None)
                    )
                )
            if number is not None:
                return str(number)
            await asyncio.sleep(0.05)
