"""Two ``gateway serve`` processes sharing PostgreSQL and Redis, and a real ``gateway worker``.

The customer's socket is open on process A; process B runs the outbox relay, the worker
delivers, and the reply reaches the customer through Redis pub/sub, on A and on a second tab
connected to B.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.store import Store
from tests.channels.webchat.conftest import agent_reply, message
from tests.cli_runner import environment
from tests.conftest import free_port


class Serve:
    """A ``gateway serve`` subprocess."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(self.port)],
            env=env,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


async def wait_ready(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            async with http.get(url + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become ready")
        await asyncio.sleep(0.1)


@pytest.fixture
def processes(
    db_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[Serve, Serve, subprocess.Popen[bytes]]]:
    common = {
        "GATEWAY_DATABASE_URL": db_url,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_OUTBOX_POLL_SECONDS": "0.2",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    a = Serve(environment(**common, GATEWAY_OUTBOX_RELAY="false"), tmp_path, tmp_path / "a.log")
    b = Serve(environment(**common, GATEWAY_OUTBOX_RELAY="true"), tmp_path, tmp_path / "b.log")
    worker_log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "gateway", "worker"],
        env=environment(**common),
        cwd=tmp_path,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    yield a, b, worker
    worker.terminate()
    try:
        worker.wait(10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)
    worker_log.close()
    a.stop()
    b.stop()


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_reply_reaches_the_customer_through_another_process(
    processes: tuple[Serve, Serve, subprocess.Popen[bytes]], db_url: str
) -> None:
    a, b, _ = processes
    store = Store(db_url)
    async with aiohttp.ClientSession() as http:
        await wait_ready(http, a.url)
        await wait_ready(http, b.url)
        async with http.post(a.url + "/api/v1/webchat/sessions", json={"locale": "en"}) as made:
            token = (await made.json())["token"]
        ws_a = await http.ws_connect(f"{a.url}/api/v1/webchat/ws?token={token}")
        ws_b = await http.ws_connect(f"{b.url}/api/v1/webchat/ws?token={token}")
        await asyncio.sleep(0.3)  # both processes' subscriptions are live by now
        await ws_a.send_json(message("my parcel is broken", "two-1", handoff=True))
        ack = await ws_a.receive_json(timeout=10)
        assert ack["type"] == "ack"

        await agent_reply(store, ack["ticket"], "Sorry! A new one ships today.", name="Wei")
        for ws in (ws_a, ws_b):
            async with asyncio.timeout(20):
                while True:
                    frame = await ws.receive_json()
                    if frame.get("author") == "agent":
                        break
            assert (frame["name"], frame["text"]) == ("Wei", "Sorry! A new one ships today.")
            assert frame["ticket"] == ack["ticket"]
        await ws_a.close()
        await ws_b.close()
    await store.close()
