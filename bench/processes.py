"""The processes a benchmark runs beside it: a private Redis, ``gateway`` commands, and what they
cost (resident memory, CPU time, read from Linux's /proc)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import redis

from bench.common import free_port


def gateway_env(**settings: str) -> dict[str, str]:
    """This environment without its ``GATEWAY_`` variables, plus ``settings``: a gateway process
    configured by the benchmark alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(settings)
    return env


@contextlib.contextmanager
def redis_server(directory: str) -> Iterator[str]:
    """A private redis-server on a free port, nothing persisted; yields its URL once it answers."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    process = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", directory, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis.from_url(url)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)


# --- servers: up once they are ready ------------------------------------------------------------


def gateway_serve(env: dict[str, str], cwd: str) -> AbstractAsyncContextManager[tuple[str, int]]:
    """``gateway serve`` on a free port; yields its base URL and pid once ``/readyz`` says so."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--port", str(port)]
    return serving(command, port, env=env, cwd=cwd)


@contextlib.asynccontextmanager
async def serving(
    command: list[str], port: int, *, env: dict[str, str] | None = None, cwd: str | None = None
) -> AsyncIterator[tuple[str, int]]:
    """``command``, a server on 127.0.0.1:``port``; yields its base URL and pid once its
    ``/readyz`` answers 200, and terminates it after."""
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url + "/readyz")
        yield url, process.pid
    finally:
        process.terminate()
        await process.wait()


async def wait_ready(url: str) -> None:
    """Until ``url`` answers 200 (within a minute)."""
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


# --- gateway worker and cron: started now, stopped together --------------------------------------


def start_gateway(args: list[str], env: dict[str, str], cwd: str) -> subprocess.Popen[bytes]:
    """``gateway <args>``, its output appended to ``<cwd>/processes.log``."""
    with (Path(cwd) / "processes.log").open("ab") as log:  # kept for a failed run's post-mortem
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args], env=env, cwd=cwd, stdout=log, stderr=log
        )


def stop_gateways(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all, then wait for each; killed after 30 s."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# --- what they cost ------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """The resident memory of this process now, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pids: list[int]) -> float | None:
    """User and system CPU time of these processes so far; None without Linux's /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])  # utime, stime (man 5 proc)
    return total / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """User and system CPU time of this machine's PostgreSQL so far: every ``postgres``
    process (the postmaster, its background workers, the backends serving connections) plus
    what its backends that have exited used (the postmaster's ``cutime``/``cstime``). None
    without Linux's /proc, or without a local PostgreSQL to read."""
    total = 0
    found = False
    try:
        entries = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue  # gone meanwhile
        if head.split("(", 1)[1] != "postgres":
            continue
        fields = tail.split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (man 5 proc)
        try:
            parent = (Path("/proc") / fields[1] / "stat").read_text()
        except OSError:
            parent = ""
        if "(postgres)" not in parent:  # the postmaster: add its children that have exited
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
            found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None
