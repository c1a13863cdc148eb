"""The web chat benchmark's client: sessions and sockets, the closed and open loops over them,
and the memory idle sockets take on the server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from typing import Any

import aiohttp

from bench.common import percentile
from bench.processes import rss_kib
from channels.webchat.tokens import SessionClaims, new_session_id, sign_token

SECRET = "bench-secret-key-0123456789abcdef"
"""The gateway's secret key in this benchmark, so that the client can mint session tokens."""


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
