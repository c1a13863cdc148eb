"""An app with agents, and clients logged in as them; an app with an attachment store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from channels.email.files import save_parts
from channels.email.mime import MailPart
from gateway.accounts import create_agent
from gateway.app import create_app
from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, Channel, InboundMessage
from gateway.pipeline import Pipeline
from gateway.store import Store
from gateway.store.tables import Agent, Ticket, TicketMessage
from tests.conftest import make_settings
from tests.factories import inbound

PASSWORD = "a long enough password"
Client = TestClient[web.Request, web.Application]


@dataclass
class AgentClient:
    """A test client logged in as one agent; sends the CSRF header on state changes."""

    client: Client
    agent_id: int
    csrf: str

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, **kwargs)

    async def send(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await self.client.request(method, path, json=json, headers=headers, **kwargs)


@dataclass
class Desk:
    app: web.Application
    store: Store
    server: TestServer
    login: Callable[[str, AgentRole], Awaitable[AgentClient]]

    @property
    def pipeline(self) -> Pipeline:
        return self.app[PIPELINE]

    async def customer_says(self, message: InboundMessage) -> str:
        """Ingest and route a customer's message; returns its ticket number."""
        result = await self.pipeline.on_message(message)
        await self.pipeline.drain()
        return result.ticket.number


async def add_agent(
    store: Store, email: str, role: AgentRole, *, team_id: int | None = None, online: bool = True
) -> int:
    agent_id = await create_agent(
        store, email=email, name=email.split("@")[0].title(), role=role, password=PASSWORD
    )
    async with store.write() as session:
        await session.execute(
            update(Agent)
            .where(Agent.id == agent_id)
            .values(must_change_password=False, team_id=team_id, online=online)
        )
    return agent_id


@pytest.fixture
async def desk(
    db_url: str, redis_url: str, store: Store, aiohttp_server: Any
) -> AsyncIterator[Desk]:
    settings = make_settings(database_url=db_url, redis_url=redis_url, outbox_relay=False)
    app = create_app(settings)
    server: TestServer = await aiohttp_server(app)
    clients: list[Client] = []

    async def login(email: str, role: AgentRole) -> AgentClient:
        agent_id = await add_agent(store, email, role)
        return await log_in(server, clients, email, agent_id)

    yield Desk(app, store, server, login)
    for client in clients:
        await client.close()


async def log_in(
    server: TestServer, clients: list[Client], email: str, agent_id: int
) -> AgentClient:
    """A client of ``server`` logged in as the agent (kept in ``clients``, to close)."""
    client: Client = TestClient(server)
    await client.start_server()
    clients.append(client)
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return AgentClient(client, agent_id, (await response.json())["csrf_token"])


EMAIL_FILE_BYTES = 1000
"""The email channel's file cap in the ``files`` app: small, so a test can pass it."""


@dataclass
class Files:
    server: TestServer
    store: Store
    directory: Path
    login: Callable[[str, AgentRole], Awaitable[AgentClient]]

    async def ticket_with_files(self, parts: tuple[MailPart, ...], who: str) -> tuple[str, int]:
        """An email asking for a person, with ``parts`` kept by the email channel's own store;
        returns the ticket number and the message id."""
        attachments = await save_parts(self.directory, parts)
        message = inbound(
            channel=Channel.EMAIL,
            external_user_id=who,
            email=who,
            thread_key=None,
            text="人工 please, see the files",
            attachments=attachments,
        )
        pipeline = self.server.app[PIPELINE]
        number = (await pipeline.on_message(message)).ticket.number
        await pipeline.drain()
        async with self.store.read() as session:
            message_id = await session.scalar(
                select(TicketMessage.id)
                .join(Ticket, Ticket.id == TicketMessage.ticket_id)
                .where(Ticket.number == number, TicketMessage.author_type == "customer")
            )
        assert message_id is not None
        return number, message_id


@pytest.fixture
async def files(
    db_url: str, redis_url: str, store: Store, tmp_path: Path, aiohttp_server: Any
) -> AsyncIterator[Files]:
    directory = tmp_path / "attachments"
    settings = make_settings(
        database_url=db_url,
        redis_url=redis_url,
        outbox_relay=False,
        email={"attachment_dir": str(directory), "attachment_max_bytes": EMAIL_FILE_BYTES},
        telegram={"attachment_dir": str(directory)},
        webchat={"attachment_dir": str(tmp_path / "webchat-attachments")},
    )
    server: TestServer = await aiohttp_server(create_app(settings))
    clients: list[Client] = []

    async def login(email: str, role: AgentRole) -> AgentClient:
        # Offline: nothing is dispatched to them behind the test's back.
        agent_id = await add_agent(store, email, role, online=False)
        return await log_in(server, clients, email, agent_id)

    yield Files(server, store, directory, login)
    for client in clients:
        await client.close()
