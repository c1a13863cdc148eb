"""``gateway up``: the web server, an RQ worker and the cron scheduler, supervised together.

A child that dies is restarted with backoff; SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from gateway.backoff import Backoff

log = logging.getLogger(__name__)

CHILDREN: dict[str, list[str]] = {
    "serve": ["serve"],
    "worker": ["worker"],
    "cron": ["cron"],
}

_HEALTHY_AFTER = 30.0
"""A child that ran this long before dying is restarted at once, not after a backoff."""


async def _keep_running(name: str, args: list[str], stop: asyncio.Event) -> None:
    backoff = Backoff(base=1.0, cap=30.0)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", *args)
        log.info("started", extra={"child": name, "pid": process.pid})
        waiter = asyncio.ensure_future(process.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stop.is_set():
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(waiter, 15)
                except TimeoutError:
                    process.kill()
                    await waiter
            return
        if loop.time() - started > _HEALTHY_AFTER:
            backoff.reset()
        delay = backoff.next()
        log.error(
            "child exited; restarting",
            extra={"child": name, "returncode": process.returncode, "in_seconds": round(delay, 1)},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


async def supervise() -> int:
    """Run every child until a signal; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(_keep_running(name, args, stop) for name, args in CHILDREN.items()))
    return 0
