"""Agent API list latency: ``GET /api/v1/tickets`` (first page, filtered) on a large store.

Usage: ``python bench/agent_api.py [--db sqlite postgres] [--tickets 10000 100000]
[--requests 300]``

For each database and size: a fresh migrated database, ``--tickets`` tickets bulk-inserted with
SQL (10 per contact; a realistic mix: ~10% new, ~25% in an agent's hands, the rest resolved or
closed; three channels; updated over 90 days; escalated ones in two teams), then the real
application (``create_app``) served on loopback, and sequential requests from one client:

- ``baseline``: ``GET /healthz`` on the same server (routing, middlewares, no database);
- ``agent_queue``: an agent's ``GET /api/v1/tickets?status=new&channel=webchat`` (what the
  console's queue asks, with the agent's visibility rule: own tickets or the team's queue);
- ``supervisor_filtered``: the same filter as a supervisor (sees every ticket);
- ``supervisor_all``: a supervisor's unfiltered first page (the whole store counted and sorted).

Requests authenticate with a bearer token (as an integration would). p50/p99 in milliseconds and
the ratio to the baseline's p50. Writes ``bench/results/agent_api.json``, with the database's
plan (``EXPLAIN``; on PostgreSQL ``EXPLAIN ANALYZE``) of the agent queue's two statements.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

# Run as a script, bench/ itself is first on sys.path and bench/telegram.py would shadow the
# ``telegram`` package the gateway imports: put the repository there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import aiohttp
from aiohttp import web
from sqlalchemy import Select, func, insert, select, text

from bench.common import free_port, fresh_database, percentile, write_results
from gateway.api.access import Principal, token_hash
from gateway.api.schemas import TicketQuery
from gateway.api.ticket_routes import _filters
from gateway.app import create_app
from gateway.models import AgentRole
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Agent, ApiToken, Contact, Team, Ticket
from gateway.store.types import utcnow
from knowledge_base.base import NeverMatches

CHUNK = 5000
QUERIES = {
    "baseline": ("agent", "/healthz"),
    "agent_queue": ("agent", "/api/v1/tickets?status=new&channel=webchat"),
    "supervisor_filtered": ("supervisor", "/api/v1/tickets?status=new&channel=webchat"),
    "supervisor_all": ("supervisor", "/api/v1/tickets"),
}
STATUSES = (
    ["new"] * 10
    + ["assigned"] * 5
    + ["in_progress"] * 15
    + ["waiting_customer"] * 5
    + ["resolved"] * 30
    + ["closed"] * 35
)


async def seed(store: Store, tickets: int) -> dict[str, str]:
    """Agents, teams, contacts and ``tickets`` tickets; returns a bearer token per role."""
    rng = random.Random(42)
    now = utcnow()
    tokens: dict[str, str] = {}
    async with store.write() as session:
        teams = [Team(name="售后"), Team(name="物流")]
        session.add_all(teams)
        await session.flush()
        agents = []
        for i in range(20):
            role = "supervisor" if i == 0 else "agent"
            agent = Agent(
                email=f"agent{i}@bench.test",
                name=f"Agent {i}",
                role=role,
                password_hash="-",
                must_change_password=False,
                active=True,
                team_id=teams[i % 2].id,
                online=True,
                capacity=10,
                created_at=now,
            )
            session.add(agent)
            agents.append(agent)
        await session.flush()
        for role, agent in (("supervisor", agents[0]), ("agent", agents[1])):
            token = "gw_" + secrets.token_urlsafe(32)
            session.add(
                ApiToken(token_hash=token_hash(token), agent_id=agent.id, name=role, created_at=now)
            )
            tokens[role] = token
        agent_ids = [a.id for a in agents[1:]]
        team_ids = [t.id for t in teams]
    contacts = tickets // 10
    async with store.write() as session:
        for start in range(0, contacts, CHUNK):
            rows = [
                {
                    "id": n + 1,
                    "name": f"客户 {n}",
                    "email": f"c{n}@example.com",
                    "vip": n % 50 == 0,
                    "created_at": now - timedelta(days=120),
                }
                for n in range(start, min(start + CHUNK, contacts))
            ]
            await session.execute(insert(Contact), rows)
    channels = ["webchat", "email", "telegram"]
    async with store.write() as session:
        for start in range(0, tickets, CHUNK):
            rows = []
            for n in range(start, min(start + CHUNK, tickets)):
                status = rng.choice(STATUSES)
                created = now - timedelta(seconds=rng.randint(0, 90 * 86400))
                escalated = status != "new" or rng.random() < 0.6
                held = status in ("assigned", "in_progress", "waiting_customer")
                rows.append(
                    {
                        "number": f"B{n:09d}",
                        "contact_id": n // 10 + 1,
                        "channel": channels[n % 3],
                        "thread_key": f"t{n}",
                        "subject": None,
                        "status": status,
                        "priority": rng.choice(["normal"] * 8 + ["urgent"] + ["critical"]),
                        "need_type": "inquiry",
                        "team_id": rng.choice(team_ids) if escalated else None,
                        "assignee_id": rng.choice(agent_ids) if held else None,
                        "escalated_at": created if escalated else None,
                        "resolved_by_bot": False,
                        "created_at": created,
                        "updated_at": created + timedelta(minutes=rng.randint(0, 600)),
                        "first_response_due_at": created + timedelta(hours=24),
                    }
                )
            await session.execute(insert(Ticket), rows)
    async with store.write() as session:
        # Statistics, as autovacuum (PostgreSQL) would have gathered on a store this size.
        await session.execute(text("ANALYZE"))
    return tokens


async def measure(
    http: aiohttp.ClientSession, url: str, token: str, requests: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(10):  # warm caches and connections
        async with http.get(url, headers=headers) as response:
            await response.read()
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        async with http.get(url, headers=headers) as response:
            body = await response.read()
            assert response.status == 200, (response.status, body[:200])
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


def agent_queue_statements(agent_id: int, team_id: int) -> dict[str, Select[Any]]:
    """The two statements ``GET /api/v1/tickets?status=new&channel=webchat`` runs for an agent
    (built by the route's own filter code): the total count and the first page."""
    who = Principal(agent_id, "Agent 1", "agent1@bench.test", AgentRole.AGENT, team_id, False, None)
    conditions = _filters(TicketQuery(status="new", channel="webchat"), who)
    joined = select(Ticket).join(Contact, Contact.id == Ticket.contact_id)
    return {
        "count": select(func.count())
        .select_from(Ticket)
        .join(Contact, Contact.id == Ticket.contact_id)
        .where(*conditions),
        "page": joined.add_columns(Contact.name)
        .where(*conditions)
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(25),
    }


async def explain(store: Store, kind: str) -> dict[str, list[str]]:
    """The database's plan (and, on PostgreSQL, timings) for the agent queue's statements."""
    plans: dict[str, list[str]] = {}
    async with store.read() as session:
        agent = await session.scalar(select(Agent).where(Agent.email == "agent1@bench.test"))
        assert agent is not None
        assert agent.team_id is not None
        for name, statement in agent_queue_statements(agent.id, agent.team_id).items():
            sql = str(
                statement.compile(
                    dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
                )
            )
            prefix = "EXPLAIN QUERY PLAN " if kind == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
            rows = (await session.execute(text(prefix + sql))).all()
            plans[name] = [" | ".join(str(c) for c in row) for row in rows]
    return plans


CANDIDATE_INDEXES = {
    "ix_cand_tickets_status_channel_updated": "tickets (status, channel, updated_at, id)",
    "ix_cand_tickets_updated": "tickets (updated_at, id)",
}
"""Indexes ``--try-indexes`` adds with plain SQL (a migration would, for real)."""


async def add_candidate_indexes(url: str) -> None:
    store = Store(url)
    try:
        async with store.write() as session:
            for name, target in CANDIDATE_INDEXES.items():
                await session.execute(text(f"CREATE INDEX {name} ON {target}"))
            await session.execute(text("ANALYZE"))
    finally:
        await store.close()


async def serve_and_measure(
    settings: Settings, tokens: dict[str, str], requests: int
) -> dict[str, Any]:
    app = create_app(settings, kb=NeverMatches())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    results: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            for name, (role, path) in QUERIES.items():
                results[name] = await measure(http, path, tokens[role], requests)
    finally:
        await runner.cleanup()
    base = results["baseline"]["p50_ms"]
    for name in QUERIES:
        if name != "baseline":
            results[name]["ratio_p50_to_baseline"] = round(results[name]["p50_ms"] / base, 1)
    results["target_p99_under_50ms"] = results["agent_queue"]["p99_ms"] < 50
    return results


async def run_one(
    kind: str, tickets: int, requests: int, *, try_indexes: bool = False
) -> dict[str, Any]:
    async with fresh_database(kind) as url:
        store = Store(url)
        started = time.perf_counter()
        tokens = await seed(store, tickets)
        seeded = time.perf_counter() - started
        plans = await explain(store, kind)
        await store.close()
        settings = Settings(
            database_url=url,
            redis_url="redis://127.0.0.1:6379/15",
            secret_key="bench-secret-key-0123456789abcdef",
            outbox_relay=False,
            _env_file=None,
        )
        # The machine may be shared: the load average says how noisy the figures are.
        results: dict[str, Any] = {
            "seed_seconds": round(seeded, 1),
            "load_average_1m_before": round(os.getloadavg()[0], 2),
        }
        results.update(await serve_and_measure(settings, tokens, requests))
        results["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        results["agent_queue_plan"] = plans
        if try_indexes:
            await add_candidate_indexes(url)
            store = Store(url)
            plans = await explain(store, kind)
            await store.close()
            with_indexes = await serve_and_measure(settings, tokens, requests)
            with_indexes["agent_queue_plan"] = plans
            results["with_candidate_indexes"] = {"indexes": CANDIDATE_INDEXES, **with_indexes}
        return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--tickets", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--try-indexes",
        action="store_true",
        help="after measuring, add the candidate indexes and measure again",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"requests_per_query": args.requests, "queries": QUERIES}
    for kind in args.db:
        for tickets in args.tickets:
            print(f"{kind} {tickets} tickets ...", flush=True)
            outcome = await run_one(kind, tickets, args.requests, try_indexes=args.try_indexes)
            print(outcome, flush=True)
            results[f"{kind}_{tickets}"] = outcome
    path = write_results("agent_api", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
