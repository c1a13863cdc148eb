"""Telegram webhook throughput against the bare aiohttp JSON POST rate of the same machine.

Usage: ``python bench/telegram.py [--updates 5000] [--concurrency 20] [--db sqlite postgres]``

Two servers, each driven by the same load generator running in a separate process (so the
client does not share the server's event loop), with the same number of concurrent requests:

1. the baseline: an aiohttp app whose handler reads the JSON body and answers 200;
2. the gateway (``create_app``) with the Telegram channel in webhook mode: each update is a
   private text (half open a ticket, half follow up in the same chat), checked for its secret
   header, parsed, and committed before the 200; routing (a knowledge base that declines, so
   every new ticket escalates) runs after, as in production.

A third figure splits the cost: the same updates handed straight to the channel's inbound step
(``TelegramInbound.handle``, no HTTP) in the same app: what the webhook layer adds is the
difference, the rest is ingest and routing.

Prints updates/s, p50/p99 latency and the ratio, checks the database holds every update as
one message, and writes ``bench/results/telegram.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and its name would shadow the
# python-telegram-bot package (``telegram``): put the repository root there instead.
if str(Path(__file__).resolve().parent) in sys.path:
    sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from bench.common import fresh_database, percentile, write_results
from channels.telegram.inbound import TELEGRAM
from gateway.app import create_app
from gateway.appkeys import PIPELINE
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import Ticket, TicketMessage
from knowledge_base.base import NeverMatches

SECRET = "bench-webhook-secret"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/channels/telegram/webhook"


def update(i: int) -> dict[str, Any]:
    """Update ``i``: even ones open a conversation, the next one follows up in it."""
    user = 10_000 + i // 2
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


async def drive(url: str, count: int, concurrency: int) -> dict[str, Any]:
    """POST updates ``0..count-1``; a conversation's two updates go in order on one worker."""
    latencies: list[float] = []
    failures = 0
    pairs = iter(range(count // 2))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            for p in pairs:
                for i in (2 * p, 2 * p + 1):
                    body = json.dumps(update(i)).encode()
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

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": latencies, "failures": failures}


async def run_client(url: str, count: int, concurrency: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        url,
        "--updates",
        str(count),
        "--concurrency",
        str(concurrency),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError("the load generator failed")
    result: dict[str, Any] = json.loads(output)
    return result


# --- the servers -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def serve_and_drive(app: web.Application, count: int, concurrency: int) -> dict[str, Any]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        result = await run_client(f"http://127.0.0.1:{port}{PATH}", count, concurrency)
        if PIPELINE in app:
            await app[PIPELINE].drain()
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
            "base_url": f"http://127.0.0.1:{_free_port()}",  # never called for text updates
        },
    )


def summary(result: dict[str, Any], count: int) -> dict[str, float]:
    latencies = result["latencies"]
    return {
        "per_s": round(count / result["seconds"], 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "failures": result["failures"],
    }


async def handle_directly(app: web.Application, count: int, concurrency: int) -> dict[str, Any]:
    """The same updates through ``TelegramInbound.handle`` in-process, without HTTP."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        inbound = app[TELEGRAM]
        latencies: list[float] = []
        pairs = iter(range(count // 2))

        async def worker() -> None:
            for p in pairs:
                for i in (2 * p, 2 * p + 1):
                    started = time.perf_counter()
                    await inbound.handle(update(i))
                    latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        await app[PIPELINE].drain()
    finally:
        await runner.cleanup()
    return {"seconds": seconds, "latencies": latencies, "failures": 0}


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
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(await drive(args.client, args.updates, args.concurrency)))
        return

    count = args.updates - args.updates % 2
    bare = summary(await serve_and_drive(bare_app(), count, args.concurrency), count)
    print(f"bare aiohttp JSON POST  {bare['per_s']:8.0f}/s  p99 {bare['p99_ms']:.1f} ms")
    results: dict[str, Any] = {
        "updates": count,
        "concurrency": args.concurrency,
        "bare_aiohttp_json_post": bare,
    }
    for kind in args.db:
        async with fresh_database(kind) as url:
            app = create_app(gateway_settings(url, args.redis_url), kb=NeverMatches())
            gateway = summary(await serve_and_drive(app, count, args.concurrency), count)
            messages, tickets = await stored(url)
        async with fresh_database(kind) as url:
            app = create_app(gateway_settings(url, args.redis_url), kb=NeverMatches())
            direct = summary(await handle_directly(app, count, args.concurrency), count)
        ratio = gateway["per_s"] / bare["per_s"]
        results[kind] = {
            **gateway,
            "ratio_to_bare": round(ratio, 3),
            "messages_stored": messages,
            "tickets_opened": tickets,
            "without_http": direct,
        }
        print(
            f"{kind:8} webhook {gateway['per_s']:8.0f} updates/s  p50 {gateway['p50_ms']:.1f} ms"
            f"  p99 {gateway['p99_ms']:.1f} ms  ratio {ratio:.2f}"
            f"  ({messages} messages, {tickets} tickets, {gateway['failures']} failures)"
        )
        print(f"{kind:8} same updates without HTTP {direct['per_s']:8.0f}/s")
        assert messages == count, "every update stored exactly once"
        assert tickets == count // 2, "every conversation on one ticket"
    print(f"written: {write_results('telegram', results)}")


if __name__ == "__main__":
    asyncio.run(main())
