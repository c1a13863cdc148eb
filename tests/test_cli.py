"""The ``gateway`` command, run as a newcomer would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from gateway.store import Store
from gateway.store.tables import Agent
from tests.cli_runner import environment, gateway
from tests.conftest import free_port

COMMANDS = [
    "up",
    "serve",
    "worker",
    "relay",
    "cron",
    "migrate",
    "agents create",
    "kb match",
    "kb import",
    "kb export",
    "outbox failed",
    "outbox retry",
    "inbound parked",
    "inbound replay",
    "inbound raw",
    "inbound drop",
    "attachments sweep",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    done = gateway(*command.split(), "--help", env=environment(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage: gateway" in done.stdout


async def test_migrate_then_create_the_first_admin(db_url: str, tmp_path: Path) -> None:
    env = environment(GATEWAY_DATABASE_URL=db_url)
    assert gateway("migrate", env=env, cwd=tmp_path).returncode == 0
    done = gateway(
        "agents",
        "create",
        "--email",
        "Boss@Shop.test",
        "--name",
        "Boss",
        "--role",
        "admin",
        env=env,
        stdin="correct horse battery\n",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "correct horse" not in done.stdout + done.stderr
    store = Store(db_url)
    async with store.read() as session:
        agent = await session.scalar(select(Agent).where(Agent.email == "boss@shop.test"))
    await store.close()
    assert agent is not None
    assert (agent.role, agent.must_change_password) == ("admin", True)
    assert PasswordHasher().verify(agent.password_hash, "correct horse battery")
    again = gateway(
        "agents",
        "create",
        "--email",
        "boss@shop.test",
        "--name",
        "B",
        env=env,
        stdin="another long password\n",
        cwd=tmp_path,
    )
    assert again.returncode == 1
    assert "exists already" in again.stderr


def test_up_without_redis_says_so_in_one_line_and_fails(tmp_path: Path) -> None:
    env = environment(
        GATEWAY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/g.db",
    )
    done = gateway("up", env=env, cwd=tmp_path)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: Redis is not reachable at redis://127.0.0.1:")
    assert "redis-server" in line


def test_up_serves_and_stops_cleanly_on_sigterm(tmp_path: Path, redis_url: str) -> None:
    import json
    import signal
    import time
    import urllib.request

    port = free_port()
    env = environment(
        GATEWAY_REDIS_URL=redis_url,
        GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/g.db",
        GATEWAY_PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "up"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    assert json.load(response) == {"status": "ok"}
                    break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "gateway up did not answer in 60 s"
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
