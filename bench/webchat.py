"""Web chat throughput, ack latency and memory per idle connection, against a baseline.

Usage: ``python bench/webchat.py [--db sqlite postgres] [--sessions 100 1000] [--seconds 8]
[--idle 10000] [--offered 1000]``

One ``gateway serve`` process per database (a private redis-server beside it). Phases:

- first message: N sessions (over the real ``POST /api/v1/webchat/sessions``) each send their
  first message at once; each opens a ticket, which routing escalates (no knowledge base).
- closed loop: then each session sends a message over its WebSocket and waits for the ack before
  the next one, for a fixed time; acked messages/s and ack latency p50/p99.
- offered load: 100 sessions sending ``--offered`` messages/s in total on a fixed schedule
  (open loop): ack latency p50/p99 at that rate, after one second of the schedule as warm-up.
- pipeline alone: the same application started in the bench process, ``Pipeline.on_message``
  called directly by N producers (no HTTP, no sockets): what the core allows.
- baseline: the same client against a bare aiohttp WebSocket server that answers each frame
  with an ack at once (no store); the ratio gateway / baseline is reported.
- idle: ``--idle`` sockets opened and left idle; the server's RSS growth / N is the memory per
  connection. Their tokens are minted with the secret key (no database row is needed to hold
  a socket open), which keeps this phase about sockets, not session creation.

The per-session rate limit (5/s) would cap a closed loop at 5 messages/s per session, so it is
raised for the run: it is abuse protection, not what is measured. Writes
``bench/results/webchat.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path, and bench/email.py and bench/telegram.py
# (names the issues fix) would shadow the email and telegram packages: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from bench.common import free_port, fresh_database, write_results
from bench.processes import gateway_env, gateway_serve, redis_server, serving
from bench.webchat_client import SECRET, idle_memory, measure, summary
from channels.webchat.tokens import new_session_id
from gateway.app import create_app
from gateway.appkeys import PIPELINE
from gateway.models import Channel, InboundMessage
from gateway.settings import Settings

THIS = Path(__file__).resolve()


# --- peers ---------------------------------------------------------------------------------------


def serve_env(db_url: str, redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    """The gateway's settings, its rate limits raised out of the way, then ``--server-env``."""
    settings = {
        "GATEWAY_DATABASE_URL": db_url,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_SECRET_KEY": SECRET,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_WEBCHAT__RATE_BURST": "1000000",
        "GATEWAY_WEBCHAT__RATE_PER_SECOND": "1000000",
        "GATEWAY_WEBCHAT__SESSIONS_BURST": "1000000",
        "GATEWAY_WEBCHAT__SESSIONS_PER_MINUTE": "1000000",
    }
    return gateway_env(**(settings | extra))


def echo_serve() -> AbstractAsyncContextManager[tuple[str, int]]:
    """The baseline server (:func:`run_echo_server`) in its own process."""
    port = free_port()
    return serving([sys.executable, str(THIS), "--echo-server", str(port)], port)


def run_echo_server(port: int) -> None:
    """The baseline: the same endpoint shape, answering every frame with an ack at once."""

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=32 * 1024)
        await ws.prepare(request)
        n = 0
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = json.loads(msg.data)
                n += 1
                ack = {"type": "ack", "client_id": frame.get("client_id"), "message_id": n}
                await ws.send_str(json.dumps(ack))
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/api/v1/webchat/ws", ws_handler)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def pipeline_alone(
    db_url: str, redis_url: str, n: int, seconds: float, *, relay: bool
) -> dict[str, Any]:
    """The same application in this process, its pipeline called directly: no HTTP, no sockets.

    What the web chat adds on top of the core is the difference between this and the socket
    figures.
    """
    settings = Settings(
        _env_file=None,
        database_url=db_url,
        redis_url=redis_url,
        secret_key=SECRET,
        log_level="WARNING",
        outbox_relay=relay,
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()  # opens the store, Redis, the relay, as serving would
    pipeline = app[PIPELINE]
    prefix = new_session_id()
    latencies: list[float] = []

    def inbound(k: int, n_: int) -> InboundMessage:
        session = f"{prefix}-{k}"
        return InboundMessage(
            channel=Channel.WEBCHAT,
            external_id=f"{session}:{n_}",
            external_user_id=session,
            thread_key=session,
            text=f"hello {n_}",
        )

    try:
        await asyncio.gather(*(pipeline.on_message(inbound(k, 0)) for k in range(n)))
        start = time.perf_counter()
        stop_at = start + seconds

        async def producer(k: int) -> None:
            count = 1
            while (sent := time.perf_counter()) < stop_at:
                await pipeline.on_message(inbound(k, count))
                count += 1
                if (done := time.perf_counter()) <= stop_at:
                    latencies.append(done - sent)

        await asyncio.gather(*(producer(k) for k in range(n)))
        await pipeline.drain()
    finally:
        await runner.cleanup()
    return summary(latencies, seconds)


async def main(args: argparse.Namespace) -> None:
    server_env = dict(item.split("=", 1) for item in args.server_env)
    results: dict[str, Any] = {
        "setup": {
            "seconds_per_phase": args.seconds,
            "server": "one `gateway serve` process (outbox relay on, no worker), private Redis",
            "client": "one asyncio process, aiohttp WebSocket client, on the same 2-core machine",
            "closed_loop": "after every session's first message (which opens its ticket)",
            "server_env": server_env,
        }
    }
    with tempfile.TemporaryDirectory() as workdir, redis_server(workdir) as redis_url:
        async with echo_serve() as (echo_url, _):
            baseline = await measure(
                echo_url, args.sessions, args.seconds, args.offered, real_sessions=False
            )
        results["baseline_echo"] = baseline
        print("baseline", json.dumps(baseline), flush=True)
        for kind in args.db:
            measured: dict[str, Any] = {}
            for n in args.sessions:
                async with fresh_database(kind) as db_url:
                    relay = server_env.get("GATEWAY_OUTBOX_RELAY", "true").lower() != "false"
                    alone = await pipeline_alone(db_url, redis_url, n, args.seconds, relay=relay)
                measured[f"pipeline_alone_{n}"] = alone
            async with (
                fresh_database(kind) as db_url,
                gateway_serve(serve_env(db_url, redis_url, server_env), workdir) as (url, pid),
            ):
                measured.update(
                    await measure(
                        url, args.sessions, args.seconds, args.offered, real_sessions=True
                    )
                )
                for n in args.sessions:
                    figures = measured[f"closed_loop_{n}"]
                    rate = figures["acked_per_s"]
                    base = baseline[f"closed_loop_{n}"]["acked_per_s"]
                    figures["ratio_to_echo_baseline"] = round(rate / base, 3)
                    alone = measured[f"pipeline_alone_{n}"]["acked_per_s"]
                    figures["ratio_to_pipeline_alone"] = round(rate / alone, 3) if alone else None
                if kind == args.db[0] and args.idle:
                    measured[f"idle_{args.idle}"] = await idle_memory(url, pid, args.idle)
            results[kind] = measured
            print(kind, json.dumps(measured), flush=True)
    path = write_results(args.out, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--sessions", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--offered", type=float, default=1000.0)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra settings for the gateway process, e.g. GATEWAY_OUTBOX_RELAY=false",
    )
    parser.add_argument("--out", default="webchat", help="results file name (bench/results/)")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.echo_server:
        run_echo_server(arguments.echo_server)
    else:
        asyncio.run(main(arguments))
