"""Ingest throughput against the bare single-row insert rate of the same database and driver.

Usage: ``python bench/ingest.py [--messages 20000] [--concurrency 20] [--db sqlite postgres]``

For each database: (1) the baseline, single-row INSERTs each in its own transaction through the
same SQLAlchemy async engine and driver; (2) the real pipeline (``Pipeline.on_message``: ingest,
then routing with a knowledge base that declines everything), half the messages opening tickets
and half threaded replies. Both run with the same number of concurrent producers. Prints
messages/s and the ratio, and writes ``bench/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as a script, bench/ comes first on sys.path, and bench/email.py and bench/telegram.py
# (names the issues fix) would shadow the email and telegram packages: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.common import fresh_database, write_results
from gateway.ingest import Ingest
from gateway.models import Channel, InboundMessage
from gateway.pipeline import Pipeline
from gateway.routing import Router
from gateway.store import Store
from knowledge_base.base import NeverMatches


async def _drive(count: int, concurrency: int, one: Any) -> float:
    """Run ``one(i)`` for i in range(count) on ``concurrency`` producers; returns seconds."""
    next_index = iter(range(count))

    async def producer() -> None:
        for i in next_index:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bare_rate(url: str, count: int, concurrency: int) -> float:
    store = Store(url)
    try:
        async with store.write() as session:
            await session.execute(text("CREATE TABLE bare (id INTEGER PRIMARY KEY, body TEXT)"))

        async def insert(i: int) -> None:
            async with store.write() as session:
                await session.execute(
                    text("INSERT INTO bare (id, body) VALUES (:id, :body)"),
                    {"id": i, "body": f"message {i}"},
                )

        seconds = await _drive(count, concurrency, insert)
    finally:
        await store.close()
    return count / seconds


def message(i: int) -> InboundMessage:
    # Even i opens a conversation; i+1 is a threaded reply in the same one.
    user = f"user-{i // 2}"
    return InboundMessage(
        channel=Channel.WEBCHAT,
        external_id=f"m-{i}",
        external_user_id=user,
        thread_key=user,
        text=f"question number {i}: where is my order?",
    )


async def pipeline_rate(url: str, count: int, concurrency: int) -> tuple[float, int]:
    store = Store(url)
    try:
        ingest = Ingest(store, zone=ZoneInfo("Asia/Shanghai"))
        pipeline = Pipeline(ingest, Router(store, NeverMatches()))
        new_tickets = 0

        # Pairs go to one producer so a reply follows its first message, as in a conversation.
        async def pair(p: int) -> None:
            nonlocal new_tickets
            for i in (2 * p, 2 * p + 1):
                result = await pipeline.on_message(message(i))
                new_tickets += result.new_ticket

        started = time.perf_counter()
        await _drive(count // 2, concurrency, pair)
        await pipeline.drain()
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    return count / seconds, new_tickets


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    results: dict[str, Any] = {"messages": args.messages, "concurrency": args.concurrency}
    for kind in args.db:
        async with fresh_database(kind) as url:
            bare = await bare_rate(url, args.messages, args.concurrency)
        async with fresh_database(kind) as url:
            rate, tickets = await pipeline_rate(url, args.messages, args.concurrency)
        ratio = rate / bare
        results[kind] = {
            "bare_inserts_per_s": round(bare, 1),
            "ingested_per_s": round(rate, 1),
            "ratio": round(ratio, 3),
            "tickets_opened": tickets,
        }
        print(
            f"{kind:8} bare insert {bare:8.0f}/s  pipeline {rate:8.0f} msg/s  "
            f"ratio {ratio:.2f}  ({tickets} tickets)"
        )
    print(f"written: {write_results('ingest', results)}")


if __name__ == "__main__":
    asyncio.run(main())
