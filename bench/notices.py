"""Outbox rows to delivered sends, against a no-op job on the same RQ worker class.

Usage: ``python bench/notices.py [--rows 10000] [--db postgres] [--workers 1 2]
[--worker-class simple]``

Peers run in their own process on 127.0.0.1: an aiosmtpd SMTP sink and the Telegram Bot API
stand-in (``tests/channels/telegram/fake_bot_api.py``). Redis is a private ``redis-server``. Per
worker count (``gateway worker --class ...`` processes):

1. the baseline: ``--rows`` no-op jobs (:func:`noop`), enqueued as the relay enqueues, until RQ
   has finished them all;
2. the real path: ``--rows`` pending outbox notices (half email, half Telegram, over 1,000
   tickets), moved by :class:`OutboxRelay` and delivered by ``workers.jobs.deliver_rows`` until
   every row is marked sent; the peers must have received exactly that many. The relay puts up
   to ``workers.relay.PER_JOB`` rows of one channel in a job, so the ratio compares rows per
   second with the baseline's jobs (one per row) per second: the cost of a row, all in.

While the one-worker delivery runs, ``gateway cron`` sweeps the SLA every 30 s and tickets whose
first response falls due during the run measure how long after its deadline each breach is
flagged (the target: within 60 s). Prints rates and ratios, the CPU time the workers and the
peers spent per job or row (from /proc, where there is one) and the load average; writes
``bench/results/notices.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path, and bench/email.py and bench/telegram.py
# (names the issues fix) would shadow the email and telegram packages: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from rq import Queue, Retry
from rq import Worker as RQWorker
from rq.registry import FinishedJobRegistry

from bench.common import free_port, fresh_database, write_results
from bench.notices_store import count_status, flagged, open_tickets, owe, sla_tickets
from bench.processes import cpu_seconds, gateway_env, redis_server, start_gateway, stop_gateways
from gateway.models import Channel, OutboxStatus
from gateway.store import Store
from gateway.tasks import running
from workers.relay import RETRY_INTERVALS, OutboxRelay

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH-token"
SECRET = "bench-secret-key-0123456789"


def noop(outbox_id: int) -> str:
    """The baseline job: takes an id like the delivery job, does nothing."""
    return "noop"


# --- peers (their own process) -----------------------------------------------------------------


def _peers(pipe: Connection) -> None:
    """The SMTP sink and the Bot API stand-in; sends their ports, then their counts on request."""
    from aiohttp import web
    from aiosmtpd.controller import Controller

    from tests.channels.telegram.fake_bot_api import FakeBotAPI

    class Sink:
        accepted = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Sink.accepted += 1
            return "250 OK"

    async def main() -> None:
        smtp_port = free_port()
        controller = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
        controller.start()
        api = FakeBotAPI(TOKEN)
        runner = web.AppRunner(api.app, access_log=None)
        await runner.setup()
        telegram_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", telegram_port).start()
        pipe.send((smtp_port, telegram_port))
        while running():
            if await asyncio.to_thread(pipe.poll, 0.2):
                if pipe.recv() == "stop":
                    break
                pipe.send((Sink.accepted, len(api.sent)))  # since the last count
                Sink.accepted = 0
                api.sent.clear()  # keeps memory flat too
                api.calls.clear()
        controller.stop()
        await runner.cleanup()

    asyncio.run(main())


# --- the gateway's processes -------------------------------------------------------------------


def worker_env(db_url: str, redis_url: str, smtp_port: int, telegram_port: int) -> dict[str, str]:
    return gateway_env(
        PYTHONPATH=str(ROOT),
        GATEWAY_DATABASE_URL=db_url,
        GATEWAY_REDIS_URL=redis_url,
        GATEWAY_SECRET_KEY=SECRET,
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_WEBCHAT__ENABLED="false",
        GATEWAY_EMAIL__ENABLED="true",
        GATEWAY_EMAIL__ADDRESS="support@example.test",
        GATEWAY_EMAIL__IMAP_USER="support@example.test",
        GATEWAY_EMAIL__IMAP_PASSWORD="unused",
        GATEWAY_EMAIL__SMTP_PORT=str(smtp_port),
        GATEWAY_EMAIL__SMTP_SECURITY="plain",
        GATEWAY_EMAIL__IMAP_SECURITY="plain",
        GATEWAY_EMAIL__AUTO_REPLY_CAP="1000",  # the cap's query runs; it never bites here
        GATEWAY_TELEGRAM__ENABLED="true",
        GATEWAY_TELEGRAM__TOKEN=TOKEN,
        GATEWAY_TELEGRAM__WEBHOOK_SECRET="bench-hook-secret",
        GATEWAY_TELEGRAM__BASE_URL=f"http://127.0.0.1:{telegram_port}",
        # The pacing Telegram asks of a real bot (30 a second) would be all this measures: the
        # stand-in has no limit, and the figure is the delivery path's cost.
        GATEWAY_TELEGRAM__RATE_PER_SECOND="0",
    )


async def until(check: Any, *, within: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish in time")
        await asyncio.sleep(every)


def per_item_ms(before: float | None, after: float | None, count: int) -> float | None:
    if before is None or after is None:
        return None
    return round((after - before) / count * 1000, 2)


# --- the runs ----------------------------------------------------------------------------------


def enqueue_noops(client: redis.Redis, count: int) -> None:
    queue = Queue("notices", connection=client)
    for first in range(0, count, 200):  # the relay's batch, in one pipeline each
        with client.pipeline() as pipe:
            for i in range(first, min(first + 200, count)):
                queue.enqueue_call(
                    "bench.notices.noop",
                    args=(i,),
                    job_id=f"noop-{i}",
                    retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                    result_ttl=3600,
                    failure_ttl=30 * 86400,
                    pipeline=pipe,
                )
            pipe.execute()


@dataclass
class Bench:
    args: argparse.Namespace
    store: Store
    client: redis.Redis
    peers: Connection
    peers_pid: int
    env: dict[str, str]
    directory: str
    tickets: list[tuple[int, int, Channel]]

    async def peer_counts(self) -> tuple[int, int]:
        """Mails and Telegram messages the peers got since the last call."""
        self.peers.send("count")
        smtp, telegram = await asyncio.to_thread(self.peers.recv)
        return int(smtp), int(telegram)

    async def noop_rate(self) -> float:
        rows: int = self.args.rows
        finished = FinishedJobRegistry("notices", connection=self.client)
        before = int(finished.count)
        began = time.perf_counter()
        await asyncio.to_thread(enqueue_noops, self.client, rows)

        async def done() -> bool:
            return int(finished.count) - before >= rows

        await until(done, within=600)
        return rows / (time.perf_counter() - began)

    async def delivery(self, due: list[tuple[int, datetime]]) -> tuple[float, float]:
        """Relay and deliver ``--rows`` notices; returns (rows/s, seconds)."""
        rows: int = self.args.rows
        sent_before = await count_status(self.store, OutboxStatus.SENT)
        await owe(self.store, self.tickets, rows)
        relay = OutboxRelay(self.store, self.client, batch=500)
        began = time.perf_counter()

        async def done() -> bool:
            while await relay.run_once():
                pass
            sent = await count_status(self.store, OutboxStatus.SENT)
            return sent - sent_before >= rows

        await until(done, within=1800, every=0.2)
        seconds = time.perf_counter() - began
        return rows / seconds, seconds

    async def breach_delays(self, due: list[tuple[int, datetime]]) -> list[float]:
        latest = max(at for _, at in due)

        async def done() -> bool:
            return len(await flagged(self.store, due)) == len(due)

        wait = (latest - datetime.now(UTC)).total_seconds() + 120
        await until(done, within=max(wait, 1), every=0.2)
        marks = await flagged(self.store, due)
        return [round((marks[t] - at).total_seconds(), 1) for t, at in due]

    async def one(self, workers: int, *, with_cron: bool) -> dict[str, Any]:
        args = self.args
        processes = [
            start_gateway(["worker", "--class", args.worker_class], self.env, self.directory)
            for _ in range(workers)
        ]
        if with_cron:
            processes.append(start_gateway(["cron"], self.env, self.directory))

        async def ready() -> bool:
            return await asyncio.to_thread(RQWorker.count, connection=self.client) >= workers

        workers_pids = [p.pid for p in processes[:workers]]
        try:
            await until(ready, within=60)
            load = os.getloadavg()[0]
            cpu = [cpu_seconds(workers_pids)]
            noop_rate = await self.noop_rate()
            cpu.append(cpu_seconds(workers_pids))
            await self.peer_counts()  # start counting from here
            due = await sla_tickets(self.store, datetime.now(UTC)) if with_cron else []
            peers_cpu = cpu_seconds([self.peers_pid])
            rate, seconds = await self.delivery(due)
            cpu.append(cpu_seconds(workers_pids))
            peers_cpu_ms = per_item_ms(peers_cpu, cpu_seconds([self.peers_pid]), args.rows)
            smtp, telegram = await self.peer_counts()
            failed = await count_status(self.store, OutboxStatus.FAILED)
            print(
                f"{workers} worker(s), {args.worker_class}: no-op {noop_rate:,.0f} jobs/s, "
                f"delivered {rate:,.0f}/s ({args.rows:,} in {seconds:.1f} s), "
                f"ratio {rate / noop_rate:.2f}; peers got {smtp:,} mails and "
                f"{telegram:,} Telegram messages; {failed} failed"
            )
            cpu_ms = {
                "noop_worker_cpu_ms_per_job": per_item_ms(cpu[0], cpu[1], args.rows),
                "delivery_worker_cpu_ms_per_row": per_item_ms(cpu[1], cpu[2], args.rows),
                "delivery_peers_cpu_ms_per_row": peers_cpu_ms,
            }
            loads = (round(load, 2), round(os.getloadavg()[0], 2))
            print(f"  load {loads[0]} at the start, {loads[1]} at the end; CPU ms: {cpu_ms}")
            if smtp + telegram != args.rows or failed:
                raise SystemExit("the peers did not get exactly one message per row")
            result: dict[str, Any] = {
                "noop_jobs_per_s": round(noop_rate, 1),
                "delivered_per_s": round(rate, 1),
                "ratio": round(rate / noop_rate, 3),
                "seconds": round(seconds, 2),
                "smtp_accepted": smtp,
                "telegram_sent": telegram,
                "load_avg_1m_at_start_and_end": loads,
                **cpu_ms,
            }
            if due:
                late = await self.breach_delays(due)
                result["sla_breach_flagged_after_s"] = late
                print(f"SLA breaches flagged {late} s after their deadlines "
                      "(target: within 60 s; the sweep runs every 30 s)")  # fmt: skip
            return result
        finally:
            stop_gateways(processes)
            self.client.flushall()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"rows": args.rows, "worker_class": args.worker_class, "runs": {}}
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    peers = spawn.Process(target=_peers, args=(child,))
    peers.start()
    smtp_port, telegram_port = parent.recv()
    directory = tempfile.mkdtemp(prefix="bench-notices-")
    try:
        with (
            redis_server(directory) as redis_url,
            redis.Redis.from_url(redis_url) as client,
        ):
            async with fresh_database(args.db) as url:
                store = Store(url)
                env = worker_env(url, redis_url, smtp_port, telegram_port)
                tickets = await open_tickets(store)
                assert peers.pid is not None
                bench = Bench(args, store, client, parent, peers.pid, env, directory, tickets)
                for n, workers in enumerate(args.workers):
                    figures = await bench.one(workers, with_cron=n == 0)
                    results["runs"][f"{workers}_worker"] = figures
                await store.close()
    finally:
        parent.send("stop")
        peers.join(10)
        shutil.rmtree(directory, ignore_errors=True)
    runs = results["runs"]
    if "1_worker" in runs and "2_worker" in runs:
        speedup = runs["2_worker"]["delivered_per_s"] / runs["1_worker"]["delivered_per_s"]
        results["two_workers_speedup"] = round(speedup, 2)
        print(f"two workers deliver {speedup:.2f}x one")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker-class", choices=("simple", "fork"), default="simple")
    args = parser.parse_args()
    if args.rows > 100_000:
        parser.error("at most 100,000 rows (traffic stays bounded)")
    results = asyncio.run(run(args))
    results["db"] = args.db
    path = write_results("notices", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
