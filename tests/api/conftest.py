"""An app with agents, and clients logged in as them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from gateway.accounts import create_agent
from gateway.app import create_app
from gateway.appkeys import PIPELINE
from gateway.models import AgentRole, InboundMessage
from gateway.pipeline import Pipeline
from gateway.store import Store
from gateway.store.tables import Agent
from tests.conftest import make_settings

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
        client: Client = TestClient(server)
        await client.start_server()
        clients.append(client)
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        return AgentClient(client, agent_id, body["csrf_token"])

    yield Desk(app, store, server, login)
    for client in clients:
        await client.close()
