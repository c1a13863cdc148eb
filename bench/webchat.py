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
import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path, and bench/email.py and bench/telegram.py
# (names the issues fix) would shadow the email and telegram packages: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from bench.common import free_port, fresh_database, percentile, write_results
from channels.webchat.tokens import SessionClaims, new_session_id, sign_token
from gateway.app import create_app
from gateway.appkeys import PIPELINE
from gateway.models import Channel, InboundMessage
from gateway.settings import Settings

SECRET = "bench-secret-key-0123456789abcdef"
THIS = Path(__file__).resolve()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- peers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(directory: str) -> Any:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            *(exe, "--bind", "127.0.0.1", "--port", str(port), "--save", ""),
            *("--appendonly", "no", "--dir", directory, "--loglevel", "warning"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.asynccontextmanager
async def gateway_serve(
    db_url: str, redis_url: str, cwd: str, **extra: str
) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATABASE_URL=db_url,
        GATEWAY_REDIS_URL=redis_url,
        GATEWAY_SECRET_KEY=SECRET,
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_WEBCHAT__RATE_BURST="1000000",
        GATEWAY_WEBCHAT__RATE_PER_SECOND="1000000",
        GATEWAY_WEBCHAT__SESSIONS_BURST="1000000",
        GATEWAY_WEBCHAT__SESSIONS_PER_MINUTE="1000000",
    )
    env.update(extra)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "serve", "--port", str(port)),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url + "/readyz")
        yield url, process.pid
    finally:
        process.terminate()
        await process.wait()


@contextlib.asynccontextmanager
async def echo_serve() -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, str(THIS), "--echo-server", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url + "/readyz")
        yield url, process.pid
    finally:
        process.terminate()
        await process.wait()


async def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.1)


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


# --- the client ----------------------------------------------------------------------------------


def minted_tokens(count: int) -> list[str]:
    return [sign_token(SessionClaims(new_session_id(), 0), SECRET) for _ in range(count)]


async def api_tokens(http: aiohttp.ClientSession, url: str, count: int) -> list[str]:
    sem = asyncio.Semaphore(50)

    async def one() -> str:
        async with sem, http.post(url + "/api/v1/webchat/sessions", json={"locale": "en"}) as r:
            body = await r.json()
            return str(body["token"])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def connect_all(
    http: aiohttp.ClientSession, url: str, tokens: list[str]
) -> list[aiohttp.ClientWebSocketResponse]:
    sem = asyncio.Semaphore(200)
    ws_url = url.replace("http", "ws", 1) + "/api/v1/webchat/ws?token="

    async def one(token: str) -> aiohttp.ClientWebSocketResponse:
        async with sem:
            return await http.ws_connect(ws_url + token, heartbeat=None, autoping=True)

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def await_ack(ws: aiohttp.ClientWebSocketResponse, client_id: str) -> None:
    while True:
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"socket closed: {msg.type}")
        frame = json.loads(msg.data)
        if frame.get("type") == "ack" and frame.get("client_id") == client_id:
            return
        if frame.get("type") == "error":
            raise RuntimeError(f"error frame: {frame}")


async def closed_loop(
    sockets: list[aiohttp.ClientWebSocketResponse], seconds: float, warmup: float = 1.0
) -> dict[str, Any]:
    latencies: list[float] = []
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def session(k: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        n = 0
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            client_id = f"c{k}-{n}"
            n += 1
            await ws.send_str(
                json.dumps({"type": "message", "client_id": client_id, "text": f"hello {n}"})
            )
            await await_ack(ws, client_id)
            done = time.perf_counter()
            if sent >= measure_from and done <= stop_at:
                latencies.append(done - sent)

    await asyncio.gather(*(session(k, ws) for k, ws in enumerate(sockets)))
    return summary(latencies, seconds)


async def offered_load(
    sockets: list[aiohttp.ClientWebSocketResponse],
    rate: float,
    seconds: float,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """Open loop: every session sends on a fixed schedule, whatever the acks do.

    As in the closed loop, the first ``warmup`` seconds of the schedule are sent but not
    measured: they carry the routing of the sessions' new tickets and the pool's new
    connections, not the steady rate.
    """
    latencies: list[float] = []
    per_session = rate / len(sockets)
    start = time.perf_counter() + 0.2
    measure_from = start + warmup

    async def session(k: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        pending: dict[str, float] = {}
        total = int(per_session * (warmup + seconds))
        offset = k / rate  # spread the sessions' first sends over one interval
        all_acked = asyncio.Event()

        async def reader() -> None:
            received = 0
            while received < total:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return
                frame = json.loads(msg.data)
                sent = pending.pop(frame.get("client_id", ""), None)
                if frame.get("type") == "ack" and sent is not None:
                    if sent >= measure_from:
                        latencies.append(time.perf_counter() - sent)
                    received += 1
            all_acked.set()

        read = asyncio.create_task(reader())
        for n in range(total):
            due = start + offset + n / per_session
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            client_id = f"o{k}-{n}"
            pending[client_id] = time.perf_counter()
            await ws.send_str(json.dumps({"type": "message", "client_id": client_id, "text": "hi"}))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_acked.wait(), 10)
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read

    await asyncio.gather(*(session(k, ws) for k, ws in enumerate(sockets)))
    result = summary(latencies, seconds)
    result["offered_per_s"] = rate
    return result


def summary(latencies: list[float], seconds: float) -> dict[str, Any]:
    """Acks inside the window; latencies are None when no ack came back inside it."""
    return {
        "acked": len(latencies),
        "acked_per_s": round(len(latencies) / seconds, 1),
        "ack_p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "ack_p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
    }


async def close_all(sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def idle_memory(url: str, pid: int, count: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        warm = await connect_all(http, url, minted_tokens(50))  # first-use allocations
        await close_all(warm)
        await asyncio.sleep(1.0)
        before = rss_kib(pid)
        started = time.perf_counter()
        sockets = await connect_all(http, url, minted_tokens(count))
        connect_seconds = time.perf_counter() - started
        await asyncio.sleep(2.0)
        after = rss_kib(pid)
        await close_all(sockets)
    return {
        "connections": count,
        "connect_seconds": round(connect_seconds, 1),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / count, 2),
    }


async def first_messages(sockets: list[aiohttp.ClientWebSocketResponse]) -> dict[str, Any]:
    """Every session's first message at once: each opens a ticket (and routes it)."""
    started = time.perf_counter()

    async def one(k: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_str(json.dumps({"type": "message", "client_id": f"w{k}", "text": "hello"}))
        await await_ack(ws, f"w{k}")

    await asyncio.gather(*(one(k, ws) for k, ws in enumerate(sockets)))
    elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 2), "acked_per_s": round(len(sockets) / elapsed, 1)}


async def measure(
    url: str, sessions: list[int], seconds: float, offered: float, *, real_sessions: bool
) -> dict[str, Any]:
    """The closed loops (after every session's first message) and the offered-load phase."""
    results: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        for n in sessions:
            tokens = await api_tokens(http, url, n) if real_sessions else minted_tokens(n)
            sockets = await connect_all(http, url, tokens)
            results[f"first_message_{n}"] = await first_messages(sockets)
            results[f"closed_loop_{n}"] = await closed_loop(sockets, seconds)
            await close_all(sockets)
            gc.collect()
        tokens = await api_tokens(http, url, 100) if real_sessions else minted_tokens(100)
        sockets = await connect_all(http, url, tokens)
        await first_messages(sockets)
        results[f"offered_{int(offered)}_per_s"] = await offered_load(sockets, offered, seconds)
        await close_all(sockets)
    return results


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
                gateway_serve(db_url, redis_url, workdir, **server_env) as (url, pid),
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
