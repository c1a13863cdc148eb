"""Telegram webhook throughput against the bare aiohttp JSON POST rate of the same machine.

Usage: ``python bench/telegram.py [--updates 5000] [--concurrency 40] [--per-chat 2 10]
[--db sqlite postgres] [--webhook-only [--skip ingest|routing]]``

Two servers, each driven by the same load generator running in a separate process (so the
client does not share the server's event loop), with the same number of concurrent requests:

1. the baseline: an aiohttp app whose handler reads the JSON body and answers 200;
2. the gateway (``create_app``, set up as ``gateway serve`` sets it up) with the Telegram
   channel in webhook mode: each update is a private text, checked for its secret header,
   parsed, and committed before the 200; routing (a knowledge base that declines, so every new
   ticket escalates) runs after, as in production.

The load is shaped the way the Bot API server sends it: up to ``max_connections`` requests at
once (40 unless ``setWebhook`` says otherwise, https://core.telegram.org/bots/api#setwebhook),
and one chat's updates one after the other, the next only once the previous was answered (the
server queues updates per chat: ``WebhookActor`` in github.com/tdlib/telegram-bot-api). Each
``--per-chat`` value is one run: 2 is ``bench/ingest.py``'s shape (every other update opens a
ticket), 10 a short conversation (the first update opens the ticket, nine follow up).

A third figure splits the cost: the same updates handed straight to the channel's inbound step
(``TelegramInbound.handle``, no HTTP) in the same app, with its CPU time. The webhook run's
extra CPU per update over it is more than the HTTP layer's own (which is the bare app's): without
HTTP each chat's next update is submitted the moment the previous one commits, so ingest's and
routing's group commits carry about 40 messages each; behind HTTP the next one comes a client
round trip later and they carry fewer (printed for both runs, counted by wrapping
``GroupCommit._settle``), paying a transaction's fixed cost more often. The webhook run also
counts the statements and commits it sends per update (``bench/transactions.py`` prices one
of each).

Two limits on the webhook's rate, from CPU time. The gateway, the load generator and, on
PostgreSQL, the database server (the CPU time of all its processes, read from Linux's /proc)
share the machine's cores: they allow at most ``cores / (their CPU ms per update)`` updates a
second. And the gateway is one event loop: one core's worth of its CPU per update is a limit of
its own (strict on PostgreSQL; SQLite's C work runs on a thread beside the loop). Both are
printed as rates and as fractions of the bare rate: a target above them cannot be met at this
CPU cost by overlapping waits better, only by spending less CPU.

``--webhook-only`` runs the webhook alone (no baseline, no ratio, nothing written): the run to
put under a profiler (``py-spy record -f raw -- python bench/telegram.py --webhook-only``).
With ``--skip routing`` its updates are stored and not routed, with ``--skip ingest`` parsed
and dropped: what routing, or everything past the webhook's parsing, costs the rate.

The machine may be shared: the baseline is run right before and right after each webhook run,
and the ratio is taken against their mean. Prints updates/s, p50/p99 latency and the ratio,
checks the database holds every update as one message, and writes
``bench/results/telegram.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and its name would shadow the
# python-telegram-bot package (``telegram``): put the repository root there instead.
if str(Path(__file__).resolve().parent) in sys.path:
    sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from bench.common import free_port, fresh_database, percentile, write_results
from bench.processes import postgres_cpu_seconds
from channels.telegram.inbound import TELEGRAM
from gateway.app import create_app
from gateway.appkeys import PIPELINE
from gateway.batching import GroupCommit
from gateway.collector import settle_after_startup
from gateway.models import InboundMessage
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from knowledge_base.base import NeverMatches

SECRET = "bench-webhook-secret"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/channels/telegram/webhook"


def update(i: int, per_chat: int) -> dict[str, Any]:
    """Update ``i``: the first of every ``per_chat`` opens a conversation, the rest follow up."""
    user = 10_000 + i // per_chat
    return {
        "update_id": 1_000_000 + i,
        "message": {
            "message_id": i,
            "date": 1795320000,
            "chat": {"id": user, "type": "private", "first_name": "Bench"},
            "from": {"id": user, "is_bot": False, "first_name": "Bench", "language_code": "zh"},
            "text": f"订单 {i} 什么时候发货？",
        },
    }


# --- the load generator (runs in its own process) ----------------------------------------------


async def drive(url: str, count: int, concurrency: int, per_chat: int) -> dict[str, Any]:
    """POST updates ``0..count-1``; a chat's updates go in order on one connection."""
    latencies: list[float] = []
    failures = 0
    chats = iter(range(count // per_chat))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            for chat in chats:
                for i in range(chat * per_chat, (chat + 1) * per_chat):
                    body = json.dumps(update(i, per_chat)).encode()
                    started = time.perf_counter()
                    async with session.post(
                        url,
                        data=body,
                        headers={HEADER: SECRET, "Content-Type": "application/json"},
                    ) as response:
                        await response.read()
                        if response.status != 200:
                            failures += 1
                    latencies.append(time.perf_counter() - started)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return {"seconds": seconds, "latencies": latencies, "failures": failures, "client_cpu_s": cpu}


async def run_client(url: str, count: int, concurrency: int, per_chat: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        url,
        "--updates",
        str(count),
        "--concurrency",
        str(concurrency),
        "--per-chat",
        str(per_chat),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError("the load generator failed")
    result: dict[str, Any] = json.loads(output)
    return result


# --- the servers -------------------------------------------------------------------------------


async def serve_and_drive(
    app: web.Application, count: int, concurrency: int, per_chat: int, *, postgres: bool = False
) -> dict[str, Any]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        url = f"http://127.0.0.1:{port}{PATH}"
        # CPU time does not depend on what else the machine runs: the server's (every thread of
        # this process, SQLite's included; not PostgreSQL's), the load generator's, and
        # PostgreSQL's (all of its processes: on a shared machine, others' queries too).
        server_cpu = time.process_time()
        database_cpu = postgres_cpu_seconds() if postgres else None
        result = await run_client(url, count, concurrency, per_chat)
        if PIPELINE in app:
            await app[PIPELINE].drain()
        result["server_cpu_s"] = time.process_time() - server_cpu
        if database_cpu is not None and (after := postgres_cpu_seconds()) is not None:
            result["database_cpu_s"] = after - database_cpu
    finally:
        await runner.cleanup()
    return result


def bare_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.json()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post(PATH, handler)
    return app


def gateway_settings(url: str, redis_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=url,
        redis_url=redis_url,
        outbox_relay=False,
        webchat={"enabled": False},
        telegram={
            "enabled": True,
            "token": "1:bench",
            "webhook_secret": SECRET,
            "base_url": f"http://127.0.0.1:{free_port()}",  # never called for text updates
        },
    )


def served_app(settings: Settings) -> web.Application:
    """The gateway as ``gateway serve`` runs it (its collector settled after start-up), with a
    knowledge base that declines everything."""
    app = create_app(settings, kb=NeverMatches())
    app.on_startup.append(settle_after_startup)
    return app


def skipping(part: str) -> Callable[[web.Application], Awaitable[None]]:
    """An ``on_startup`` hook: each parsed update goes no further than ingest (``routing``:
    stored, never routed) or the pipeline's door (``ingest``: parsed, then dropped)."""

    async def hook(app: web.Application) -> None:
        pipeline = app[PIPELINE]

        async def stops_early(inbound: InboundMessage) -> Any:
            return None if part == "ingest" else await pipeline.ingest(inbound)

        pipeline.on_message = stops_early  # type: ignore[method-assign]

    return hook


def summary(result: dict[str, Any], count: int) -> dict[str, float]:
    latencies = result["latencies"]
    return {
        "per_s": round(count / result["seconds"], 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "failures": result["failures"],
        **{
            f"{part}_cpu_ms_per_update": round(result[f"{part}_cpu_s"] / count * 1000, 3)
            for part in ("server", "client", "database")
            if f"{part}_cpu_s" in result
        },
    }


@contextlib.contextmanager
def counting_batches() -> Iterator[dict[str, Any]]:
    """Mean messages per batch of each group commit (``Ingest``, ``Router``) while inside.

    Counted by wrapping ``GroupCommit._settle`` in this process, for the block only.
    """
    counts: dict[str, list[int]] = {}
    settle = GroupCommit._settle

    async def counted(commit: GroupCommit[Any, Any], batch: list[Any]) -> None:
        owner = getattr(commit._write, "__qualname__", "?").split(".")[0]
        counts.setdefault(owner, []).append(len(batch))
        await settle(commit, batch)

    sizes: dict[str, Any] = {}
    GroupCommit._settle = counted  # type: ignore[method-assign,assignment]
    try:
        yield sizes
    finally:
        GroupCommit._settle = settle  # type: ignore[method-assign]
        sizes.update({owner: round(sum(n) / len(n), 1) for owner, n in counts.items()})


@contextlib.contextmanager
def counting_statements() -> Iterator[dict[str, int]]:
    """Statements sent and transactions committed, by every engine in this process, while
    inside (SQLAlchemy's ``before_cursor_execute`` and ``commit`` events; a function call
    each)."""
    counts = {"statements": 0, "commits": 0}

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", commit)


async def handle_directly(
    app: web.Application, count: int, concurrency: int, per_chat: int
) -> dict[str, Any]:
    """The same updates through ``TelegramInbound.handle`` in-process, without HTTP."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        inbound = app[TELEGRAM]
        latencies: list[float] = []
        chats = iter(range(count // per_chat))

        async def worker() -> None:
            for chat in chats:
                for i in range(chat * per_chat, (chat + 1) * per_chat):
                    started = time.perf_counter()
                    await inbound.handle(update(i, per_chat))
                    latencies.append(time.perf_counter() - started)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        await app[PIPELINE].drain()
        cpu = time.process_time() - cpu
    finally:
        await runner.cleanup()
    return {"seconds": seconds, "latencies": latencies, "failures": 0, "server_cpu_s": cpu}


async def stored(url: str) -> tuple[int, int]:
    store = Store(url)
    try:
        async with store.read() as session:
            messages = await session.scalar(select(func.count()).select_from(TicketMessage))
            tickets = await session.scalar(select(func.count()).select_from(Ticket))
    finally:
        await store.close()
    return int(messages or 0), int(tickets or 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=40,
        help="requests at once (setWebhook's default; GATEWAY_TELEGRAM__WEBHOOK_MAX_CONNECTIONS"
        " sets it, up to 100)",
    )
    parser.add_argument(
        "--per-chat", type=int, nargs="+", default=[2, 10], help="updates per chat, one run each"
    )
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--webhook-only", action="store_true", help="the webhook runs alone, for a profiler"
    )
    parser.add_argument(
        "--skip",
        choices=["ingest", "routing"],
        help="with --webhook-only: updates go no further than parsed (ingest) or stored"
        " (routing), to see what the rest costs",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        result = await drive(args.client, args.updates, args.concurrency, args.per_chat[0])
        print(json.dumps(result))
        return
    if args.skip and not args.webhook_only:
        parser.error("--skip goes with --webhook-only")
    if args.webhook_only:
        for kind in args.db:
            for per_chat in args.per_chat:
                async with fresh_database(kind) as url:
                    app = served_app(gateway_settings(url, args.redis_url))
                    if args.skip:
                        app.on_startup.append(skipping(args.skip))
                    run = await serve_and_drive(
                        app, args.updates, args.concurrency, per_chat, postgres=kind == "postgres"
                    )
                print(f"{kind:8} {per_chat:2} per chat: {summary(run, args.updates)}")
        return

    shapes: list[int] = args.per_chat
    count = args.updates - args.updates % math.lcm(*shapes)
    results: dict[str, Any] = {
        "updates": count,
        "concurrency": args.concurrency,
        "load_average_at_start": os.getloadavg()[0],
    }
    for kind in args.db:
        results[kind] = {}
        for per_chat in shapes:
            results[kind][f"per_chat_{per_chat}"] = await one_shape(
                kind, args.redis_url, count, args.concurrency, per_chat
            )
    results["load_average_at_end"] = os.getloadavg()[0]
    print(f"written: {write_results('telegram', results)}")


async def one_shape(
    kind: str, redis_url: str, count: int, concurrency: int, per_chat: int
) -> dict[str, Any]:
    """The webhook run of one load shape on one database, between two baseline runs (the
    machine is shared: the baseline is taken right before and after, and their mean is the
    ratio's denominator), then the same updates in-process."""
    before = summary(await serve_and_drive(bare_app(), count, concurrency, 1), count)
    async with fresh_database(kind) as url:
        app = served_app(gateway_settings(url, redis_url))
        with counting_batches() as batch_sizes, counting_statements() as sent:
            run = await serve_and_drive(
                app, count, concurrency, per_chat, postgres=kind == "postgres"
            )
            gateway = summary(run, count)
        messages, tickets = await stored(url)
    after = summary(await serve_and_drive(bare_app(), count, concurrency, 1), count)
    async with fresh_database(kind) as url:
        app = served_app(gateway_settings(url, redis_url))
        with counting_batches() as direct_batch_sizes:
            direct = summary(await handle_directly(app, count, concurrency, per_chat), count)
    bare_per_s = (before["per_s"] + after["per_s"]) / 2
    ratio = gateway["per_s"] / bare_per_s
    # The same comparison in CPU time (server and load generator), which the machine's other
    # work does not move: what the ratio would be on an idle machine if both were CPU-bound.
    cpu = {
        name: run["server_cpu_ms_per_update"] + run["client_cpu_ms_per_update"]
        for name, run in (("bare", before), ("gateway", gateway))
    }
    # What the machine's cores allow at this CPU cost: gateway, load generator and database
    # server share them, so at most cores / (their CPU per update) updates a second, however
    # well the gateway overlapped its waits.
    machine_ms = cpu["gateway"] + gateway.get("database_cpu_ms_per_update", 0.0)
    cores_allow = (os.cpu_count() or 1) * 1000 / machine_ms
    # And the gateway is one process, one event loop: on PostgreSQL all of its CPU is the
    # loop's, so one core's worth is its own limit (SQLite's C work runs on a thread beside).
    core_allows = 1000 / gateway["server_cpu_ms_per_update"]
    database = (
        f", database {gateway['database_cpu_ms_per_update']:.2f}"
        if "database_cpu_ms_per_update" in gateway
        else ""
    )
    print(
        f"{kind:8} {per_chat:2} per chat: webhook {gateway['per_s']:6.0f} updates/s"
        f"  p50 {gateway['p50_ms']:.1f} ms  p99 {gateway['p99_ms']:.1f} ms"
        f"  bare {before['per_s']:.0f}/{after['per_s']:.0f}/s  ratio {ratio:.3f}"
        f"  ({messages} messages, {tickets} tickets, {gateway['failures']} failures);"
        f"  without HTTP {direct['per_s']:6.0f}/s"
        f" (server CPU {direct['server_cpu_ms_per_update']:.2f});"
        f"  CPU ms/update {cpu['gateway']:.2f}"
        f" (server {gateway['server_cpu_ms_per_update']:.2f}{database}) vs bare {cpu['bare']:.2f};"
        f"  the {os.cpu_count()} cores allow {cores_allow:.0f}/s"
        f" ({cores_allow / bare_per_s:.3f} of bare), one core of server CPU {core_allows:.0f}/s"
        f" ({core_allows / bare_per_s:.3f});"
        f"  messages a batch {batch_sizes}, without HTTP {direct_batch_sizes};"
        f"  per update {sent['statements'] / count:.2f} statements,"
        f" {sent['commits'] / count:.3f} commits"
    )
    assert messages == count, "every update stored exactly once"
    assert tickets == count // per_chat, "every conversation on one ticket"
    return {
        **gateway,
        "bare_aiohttp_json_post": {"before": before, "after": after},
        "ratio_to_bare": round(ratio, 3),
        "cpu_ratio_to_bare": round(cpu["bare"] / cpu["gateway"], 3),
        "machine_cpu_ms_per_update": round(machine_ms, 3),
        "cores_allow_per_s": round(cores_allow, 1),
        "cores_allow_ratio_to_bare": round(cores_allow / bare_per_s, 3),
        "one_core_allows_ratio_to_bare": round(core_allows / bare_per_s, 3),
        "messages_stored": messages,
        "tickets_opened": tickets,
        "messages_a_batch": batch_sizes,
        "statements_an_update": round(sent["statements"] / count, 3),
        "commits_an_update": round(sent["commits"] / count, 4),
        "without_http": {**direct, "messages_a_batch": direct_batch_sizes},
    }


if __name__ == "__main__":
    asyncio.run(main())
