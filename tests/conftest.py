"""Shared fixtures: real Redis and PostgreSQL on loopback, a fresh database per test.

Every store test runs on SQLite and on PostgreSQL (``db_url`` is parametrised). PostgreSQL is the
server on 127.0.0.1:5432 (``GATEWAY_TEST_PG`` overrides); each run migrates one template database
and each test gets a fresh copy of it. Redis is a private ``redis-server`` on a free port, so tests
can stop and start it without touching anybody else's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from gateway.migrate import upgrade
from gateway.settings import Settings
from gateway.store import Store

PG_ADMIN = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "test-secret-key-0123456789"


# --- offline by default ------------------------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(address: Any) -> None:
    if isinstance(address, str | bytes):  # AF_UNIX
        return
    host = address[0]
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    pytest.fail(f"test tried to reach the network: {address!r} (tests stay on loopback)")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _offline() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# --- Redis -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server that a test may stop and start again on the same port."""

    def __init__(self, directory: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (make test installs it)")
        self.exe = exe
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    if redis_server.process is None:
        redis_server.start()
    yield redis_server.url
    if redis_server.process is None:
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    client.close()


# --- databases ---------------------------------------------------------------------------------


def _asyncpg_url(database: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """Run ``func`` outside any event loop (fixtures may be set up from async tests)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(func, *args).result()


def _pg_admin_sync(sql: str) -> None:
    _in_thread(asyncio.run, _pg_admin(sql))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    _in_thread(upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"gw_tpl_{os.getpid()}"
    try:
        _pg_admin_sync(f"DROP DATABASE IF EXISTS {name}")
        _pg_admin_sync(f"CREATE DATABASE {name}")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN} is not usable: {exc}")
    _in_thread(upgrade, "postgresql+asyncpg://" + _asyncpg_url(name).split("://", 1)[1])
    yield name
    _pg_admin_sync(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated, empty database: SQLite or PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "gateway.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("pg_template")
    name = f"gw_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f"CREATE DATABASE {name} TEMPLATE {template_name}")
    yield "postgresql+asyncpg://" + _asyncpg_url(name).split("://", 1)[1]
    await _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url)
    yield store
    await store.close()


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: nothing read from the environment or a .env file."""
    values: dict[str, Any] = {"secret_key": SECRET}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
async def _dump_tasks_when_stuck() -> AsyncIterator[None]:
    """If a test is still running after 100 s, print every asyncio task's stack (then the
    pytest-timeout at 300 s fails it): a hung await shows where it waits."""

    async def watchdog() -> None:
        await asyncio.sleep(100)
        # Written to a file: pytest captures stderr until the test ends, which it does not.
        with (Path(tempfile.gettempdir()) / f"stuck-test-{os.getpid()}.txt").open("w") as out:
            print(os.environ.get("PYTEST_CURRENT_TEST"), file=out)
            for task in asyncio.all_tasks():
                task.print_stack(file=out)

    task = asyncio.create_task(watchdog())
    yield
    task.cancel()
