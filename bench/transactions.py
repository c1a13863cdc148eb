"""What a write transaction costs on SQLite through the store, against aiosqlite alone.

Usage: ``python bench/transactions.py [--transactions 2000] [--rows 40]``

Every batch ingest or the router writes is one transaction: ``Store.write()`` (an ORM session
on SQLAlchemy's async engine, ``BEGIN IMMEDIATE``, the commit, the pool's reset) around its
statements. This measures, in CPU time of this process (aiosqlite's thread included), one
transaction that only begins and commits, and one that also inserts ``--rows`` contacts in
one statement (``BulkInsert``), each:

- through the store, as the gateway runs them;
- through one aiosqlite connection, the same SQL, nothing else.

The difference is the store's fixed cost per transaction, the first thing a batch pays
before its own work (``bench/ingest_batches.py`` splits a batch into fixed and per-message
costs). Then a statement's: ingest's lookup of a batch's ``--rows`` external ids, ten times
in one transaction, through the store's session (as ingest runs it), as the compiled SQL on
the session's connection (``exec_driver_sql``), and through aiosqlite; less the empty
transaction, over ten. Rounds alternate between the ways so that the machine's drift hits
them alike; the median round is printed. Writes ``bench/results/transactions.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path, and bench/email.py (a name the issue fixes)
# would shadow the email package: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosqlite
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import sqlite

from bench.common import fresh_database, write_results
from gateway.ingest.contacts import CONTACTS
from gateway.ingest.transaction import MESSAGES
from gateway.store import Store
from gateway.store.bulk import BulkInsert
from gateway.store.types import utcnow

ROUNDS = 5
STATEMENTS = 10


async def cpu_ms_each(count: int, step: Callable[[], Awaitable[None]]) -> float:
    started = time.process_time()
    for _ in range(count):
        await step()
    return (time.process_time() - started) / count * 1000


async def measure(transactions: int, rows: int) -> dict[str, Any]:
    async with fresh_database("sqlite") as url:
        store = Store(url)
        driver = await aiosqlite.connect(url.split(":///", 1)[1], isolation_level=None)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                await driver.execute(f"PRAGMA {pragma}")
            now = utcnow()
            values: list[dict[str, Any]] = [
                {
                    "name": f"c{i}",
                    "email": None,
                    "phone": None,
                    "locale": "zh",
                    "vip": False,
                    "created_at": now,
                }
                for i in range(rows)
            ]
            insert = BulkInsert(CONTACTS)
            columns = ", ".join(values[0])
            group = "(" + ", ".join("?" * len(values[0])) + ")"
            sql = f"INSERT INTO contacts ({columns}) VALUES " + ", ".join([group] * rows)  # noqa: S608
            stamp = now.replace(tzinfo=None).isoformat(" ", "microseconds")  # as the store has it
            flat = tuple(v for i in range(rows) for v in (f"c{i}", None, None, "zh", 0, stamp))

            async def store_empty() -> None:
                async with store.write() as session:
                    await session.connection()  # BEGIN IMMEDIATE, as any statement would

            async def store_insert() -> None:
                async with store.write() as session:
                    await insert(session, values)

            async def driver_empty() -> None:
                await driver.execute("BEGIN IMMEDIATE")
                await driver.execute("COMMIT")

            async def driver_insert() -> None:
                await driver.execute("BEGIN IMMEDIATE")
                await driver.execute(sql, flat)
                await driver.execute("COMMIT")

            # One lookup of a batch's size, ten times in one transaction: ingest's first
            # statement (stored messages by external id) as the store runs it, then the SQL
            # SQLAlchemy compiles for it sent through the store's connection
            # (``exec_driver_sql``: no compiling, no result processing) and through aiosqlite.
            ids = [f"1:{i}" for i in range(rows)]
            lookup = {"channel": "telegram", "ids": ids}
            statement = select(MESSAGES).where(
                MESSAGES.c.channel == bindparam("channel"),
                MESSAGES.c.external_id.in_(bindparam("ids", expanding=True)),
            )  # built once, as gateway/ingest/lookups.py builds it
            compiled = str(
                statement.params(lookup).compile(
                    dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True}
                )
            )  # its text with the IN list spelled out; the parameters in the text's order:
            positional = ("telegram", *ids)

            async def store_statements() -> None:
                async with store.write() as session:
                    for _ in range(STATEMENTS):
                        (await session.execute(statement, lookup)).all()

            async def connection_statements() -> None:
                async with store.write() as session:
                    connection = await session.connection()
                    for _ in range(STATEMENTS):
                        (await connection.exec_driver_sql(compiled, positional)).all()

            async def driver_statements() -> None:
                await driver.execute("BEGIN IMMEDIATE")
                for _ in range(STATEMENTS):
                    await driver.execute_fetchall(compiled, positional)
                await driver.execute("COMMIT")

            steps = {
                "store_empty_ms": store_empty,
                "driver_empty_ms": driver_empty,
                "store_insert_ms": store_insert,
                "driver_insert_ms": driver_insert,
                "store_statements_ms": store_statements,
                "connection_statements_ms": connection_statements,
                "driver_statements_ms": driver_statements,
            }
            timings: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(ROUNDS):
                for name, step in steps.items():
                    timings[name].append(await cpu_ms_each(transactions // ROUNDS, step))
        finally:
            await driver.close()
            await store.close()
    results = {name: round(statistics.median(ms), 3) for name, ms in timings.items()}
    # A statement's own cost: the transaction of ten, less the empty one, over ten.
    for way, empty in (
        ("store", "store_empty_ms"),
        ("connection", "store_empty_ms"),
        ("driver", "driver_empty_ms"),
    ):
        each = (results[f"{way}_statements_ms"] - results[empty]) / STATEMENTS
        results[f"{way}_statement_each_ms"] = round(each, 3)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=40)
    args = parser.parse_args()
    results = await measure(args.transactions, args.rows)
    print(
        f"CPU ms a transaction: begin + commit {results['store_empty_ms']:.3f} through the store,"
        f" {results['driver_empty_ms']:.3f} through aiosqlite;"
        f" with {args.rows} rows inserted {results['store_insert_ms']:.3f}"
        f" / {results['driver_insert_ms']:.3f};"
        f" a {args.rows}-key lookup {results['store_statement_each_ms']:.3f} through the store's"
        f" session, {results['connection_statement_each_ms']:.3f} as SQL on its connection,"
        f" {results['driver_statement_each_ms']:.3f} through aiosqlite"
    )
    write_results("transactions", {"rows": args.rows, **results})


if __name__ == "__main__":
    asyncio.run(main())
