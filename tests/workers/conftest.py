"""Real RQ workers against the test's private Redis, the store and the channel peers.

A test starts the app (``create_app`` with the test's clock and no outbox relay of its own), an
:class:`OutboxRelay` on that same clock, and a worker process (:mod:`tests.workers.rq_worker`,
``SimpleWorker`` or the forking ``Worker``) configured through ``GATEWAY_*`` variables like a
deployed one. The desk side (:class:`Office`) changes tickets through ``gateway.desk``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from redis import Redis
from rq import Worker as RQWorker
from sqlalchemy import select

from gateway import desk
from gateway.dispatch import LeastLoaded
from gateway.models import AgentRole, OutboxStatus
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Agent, OutboxRow, Team, Ticket
from tests.channels.email.conftest import smtp_sink  # noqa: F401 - a fixture
from tests.channels.telegram.conftest import fake  # noqa: F401 - a fixture
from tests.factories import Clock
from workers.relay import OutboxRelay

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: outside quiet hours
WORKER_KINDS = ["simple", "forking"]


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``GATEWAY_*`` variables a worker process reads them from."""
    env: dict[str, str] = {}

    def put(name: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, SecretStr):
            env[name] = value.get_secret_value()
        elif isinstance(value, str):
            env[name] = value
        else:
            plain = _plain(value)
            env[name] = plain if isinstance(plain, str) else json.dumps(plain)

    for field in type(settings).model_fields:
        value = getattr(settings, field)
        if isinstance(value, BaseModel):
            for sub in type(value).model_fields:
                put(f"GATEWAY_{field.upper()}__{sub.upper()}", getattr(value, sub))
        else:
            put(f"GATEWAY_{field.upper()}", value)
    return env


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class WorkerProcess:
    """One ``rq`` worker process of the given class; stopped with SIGTERM (a warm shutdown)."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"worker-{kind}.log"

    def start(self, settings: Settings) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.pop("REDIS_URL", None)
        env.update(settings_env(settings))
        env["PYTHONPATH"] = str(ROOT)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.workers.rq_worker", self.kind],
                env=env,
                cwd=self.directory,  # not the checkout: no .env file is read
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, redis: Redis, *, within: float = 30) -> None:
        """Wait until the worker has registered with Redis (it is listening)."""
        async with asyncio.timeout(within):
            while True:
                if await asyncio.to_thread(RQWorker.count, connection=redis):
                    return
                if self.process is not None and self.process.poll() is not None:
                    pytest.fail(f"the worker died:\n{self.output()}")
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(params=WORKER_KINDS, ids=["simple-worker", "forking-worker"])
def worker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def worker(worker_kind: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(worker_kind, tmp_path)
    yield process
    process.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@dataclass
class Courier:
    """The outbox relay on the test's clock, and a wait until the worker has delivered."""

    store: Store
    relay: OutboxRelay
    worker: WorkerProcess

    async def deliver(self, *, within: float = 60) -> list[OutboxRow]:
        """Relay every due row, then wait until none is owed; returns all rows by id."""
        async with asyncio.timeout(within):
            while True:
                await self.relay.run_once()
                rows = await outbox(self.store)
                waiting = [
                    r
                    for r in rows
                    if r.status in (OutboxStatus.QUEUED.value, OutboxStatus.PENDING.value)
                    and r.due_at <= self.relay.clock()
                ]
                if not waiting:
                    return rows
                process = self.worker.process
                if process is not None and process.poll() is not None:
                    pytest.fail(f"the worker died:\n{self.worker.output()}")
                await asyncio.sleep(0.05)


@pytest.fixture
async def make_courier(
    redis_url: str, clock: Clock, worker: WorkerProcess
) -> AsyncIterator[Callable[[Store], Courier]]:
    clients: list[Redis] = []

    def make(store: Store) -> Courier:
        client = Redis.from_url(redis_url)
        clients.append(client)
        return Courier(store, OutboxRelay(store, client, clock=clock), worker)

    yield make
    for client in clients:
        client.close()


async def outbox(store: Store) -> list[OutboxRow]:
    async with store.read() as session:
        return list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())


@dataclass
class Office:
    """The shop's people: one team's online agent and supervisor, and another team's supervisor
    (created first, so "any supervisor" would be the wrong one)."""

    store: Store
    clock: Clock
    policies: desk.Policies
    agent: desk.Actor
    team_id: int
    supervisor_id: int

    async def act(
        self, number: str, operation: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> None:
        """One desk operation on ticket ``number`` at the clock's time, in one transaction."""
        async with self.store.write() as session:
            ticket = await desk.find_ticket(session, number, lock=True)
            await operation(session, ticket, self.agent, *args, self.clock(), **kwargs)

    async def change(self, number: str, **fields: object) -> None:
        async def apply(session: Any, ticket: Ticket, actor: desk.Actor, now: datetime) -> None:
            await desk.change(
                session, ticket, actor, now, fields=fields, note_text=None, policies=self.policies
            )

        await self.act(number, apply)


async def open_office(store: Store, clock: Clock, settings: Settings) -> Office:
    async with store.write() as session:
        other, ours = Team(name="Logistics"), Team(name="After-sales")
        session.add_all([other, ours])
        await session.flush()
        people = [
            Agent(email="boss-b@shop.test", name="Boss B", role=AgentRole.SUPERVISOR.value,
                  team_id=other.id),
            Agent(email="boss-a@shop.test", name="Boss A", role=AgentRole.SUPERVISOR.value,
                  team_id=ours.id),
            Agent(email="li@shop.test", name="Li Lei", role=AgentRole.AGENT.value,
                  team_id=ours.id, online=True),
        ]  # fmt: skip
        for person in people:
            person.password_hash = "-"
            person.must_change_password = False
            person.active = True
            person.created_at = clock()
        session.add_all(people)
        await session.flush()
        team_id, supervisor_id, agent_id = ours.id, people[1].id, people[2].id
    return Office(
        store,
        clock,
        desk.Policies.from_settings(settings, LeastLoaded()),
        desk.Actor(agent_id, "Li Lei", may_take_over=False),
        team_id,
        supervisor_id,
    )
