"""The monthly report over a million tickets, against a plain count of the same table.

Usage: ``python bench/reports.py [--tickets 1000000] [--runs 3] [--db postgres sqlite]``

For each database: a fresh, migrated store gets a year of history (2026, Shanghai time) made by
the database itself (``generate_series`` on PostgreSQL, a recursive CTE on SQLite): tickets over
every channel, need type, priority and six categories, with first responses, resolutions, a
survey answered on every third ticket and a reopen on every fiftieth. Then, ``--runs`` times
each: (1) the baseline, ``SELECT count(*) FROM tickets`` over the whole table; (2) the monthly
report for November as the report page asks for it (every headline figure, satisfaction per
category, the charts, and the first page of a drill-down), through the same functions the API
calls. Prints the median seconds and the ratio, and writes ``bench/results/reports.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as a script, bench/ comes first on sys.path, and bench/email.py and bench/telegram.py
# (names the issues fix) would shadow the email and telegram packages: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text

from bench.common import fresh_database, write_results
from gateway.report_drilldown import Drill, drill_conditions
from gateway.reports import (
    ReportFilter,
    charts,
    satisfaction_by_category,
    summary,
    time_in_status,
)
from gateway.store import Store
from gateway.store.tables import Ticket

ZONE = ZoneInfo("Asia/Shanghai")
QUARTER = datetime(2026, 10, 1, tzinfo=ZONE)
MONTH = ReportFilter(
    start=datetime(2026, 11, 1, tzinfo=ZONE), end=datetime(2026, 12, 1, tzinfo=ZONE)
)

# One row per ticket i = 1..N, spread evenly over 2026 in Shanghai (2025-12-31 16:00 UTC on).
# Every column is a function of i, so both databases hold the same history.
_PG_TICKETS = """
INSERT INTO tickets (id, number, contact_id, channel, thread_key, status, priority, need_type,
  category_id, escalated_at, resolved_by_bot, created_at, updated_at, first_response_at,
  first_response_due_at, resolved_at, closed_at)
SELECT i, 'B' || lpad(i::text, 10, '0'), 1,
  (ARRAY['webchat', 'email', 'telegram'])[i % 3 + 1], NULL,
  CASE WHEN i % 20 = 0 THEN 'in_progress' ELSE 'closed' END,
  CASE WHEN i % 10 = 0 THEN 'critical' WHEN i % 10 < 3 THEN 'urgent' ELSE 'normal' END,
  (ARRAY['inquiry', 'complaint', 'repair', 'suggestion'])[i % 4 + 1],
  1 + i % 6,
  CASE WHEN i % 5 = 0 THEN NULL ELSE c + interval '1 minute' END,
  i % 5 = 0, c,
  CASE WHEN i % 20 = 0 THEN c ELSE c + make_interval(mins => ((i * 104729) % 4320)::int) END,
  c + make_interval(mins => ((i * 7919) % 300)::int),
  c + interval '240 minutes',
  CASE WHEN i % 20 = 0 THEN NULL ELSE c + make_interval(mins => ((i * 104729) % 4320)::int) END,
  CASE WHEN i % 20 = 0 THEN NULL ELSE c + make_interval(mins => ((i * 104729) % 4320)::int) END
FROM (
  SELECT i,
    timestamptz '2025-12-31 16:00:00+00' + make_interval(secs => (i * :span) / :n) AS c
  FROM generate_series(1::bigint, :n) AS i
) AS s
"""
_PG_SURVEYS = """
INSERT INTO surveys (ticket_id, contact_id, channel, due_at, sent_at, score, answered_at,
  created_at)
SELECT id, 1, channel, resolved_at, resolved_at, 1 + (id * 31) % 5,
  resolved_at + interval '2 hours', resolved_at
FROM tickets WHERE id % 3 = 0 AND resolved_at IS NOT NULL
"""
_PG_EVENTS = """
INSERT INTO ticket_events (ticket_id, kind, old_value, new_value, actor_type, created_at)
SELECT id, 'reopened', 'closed', 'reopened', 'customer', resolved_at + interval '1 day'
FROM tickets WHERE id % 50 = 0 AND resolved_at IS NOT NULL
"""
# The audit trail of the last quarter (what "time in each status" reads for November): created,
# then in progress at the first response, then closed at resolution.
_PG_STATUS = """
INSERT INTO ticket_events (ticket_id, kind, old_value, new_value, actor_type, created_at)
SELECT id, 'created', NULL, 'new', 'system', created_at FROM tickets WHERE created_at >= :since
UNION ALL
SELECT id, 'status', 'new', 'in_progress', 'agent', first_response_at FROM tickets
WHERE created_at >= :since
UNION ALL
SELECT id, 'status', 'in_progress', 'closed', 'agent', resolved_at FROM tickets
WHERE created_at >= :since AND resolved_at IS NOT NULL
"""

# SQLite stores SQLAlchemy's DateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' text (UTC here); the
# history is written in exactly that form so comparisons with bound values order correctly.
_TS = "strftime('%Y-%m-%d %H:%M:%S', {base}, {shift}) || '.000000'"


def _ts(base: str, shift: str) -> str:
    return _TS.format(base=base, shift=shift)


_SQLITE_TICKETS = f"""
INSERT INTO tickets (id, number, contact_id, channel, thread_key, status, priority, need_type,
  category_id, escalated_at, resolved_by_bot, created_at, updated_at, first_response_at,
  first_response_due_at, resolved_at, closed_at)
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n),
t AS (SELECT i, {_ts("'2025-12-31 16:00:00'", "'+' || ((i * :span) / :n) || ' seconds'")} AS c,
  (i * 104729) % 4320 AS fix FROM s)
SELECT i, 'B' || substr('0000000000' || i, -10), 1,
  CASE i % 3 WHEN 0 THEN 'webchat' WHEN 1 THEN 'email' ELSE 'telegram' END, NULL,
  CASE WHEN i % 20 = 0 THEN 'in_progress' ELSE 'closed' END,
  CASE WHEN i % 10 = 0 THEN 'critical' WHEN i % 10 < 3 THEN 'urgent' ELSE 'normal' END,
  CASE i % 4 WHEN 0 THEN 'inquiry' WHEN 1 THEN 'complaint' WHEN 2 THEN 'repair'
    ELSE 'suggestion' END,
  1 + i % 6,
  CASE WHEN i % 5 = 0 THEN NULL ELSE {_ts("c", "'+1 minutes'")} END,
  i % 5 = 0, c,
  CASE WHEN i % 20 = 0 THEN c ELSE {_ts("c", "'+' || fix || ' minutes'")} END,
  {_ts("c", "'+' || ((i * 7919) % 300) || ' minutes'")},
  {_ts("c", "'+240 minutes'")},
  CASE WHEN i % 20 = 0 THEN NULL ELSE {_ts("c", "'+' || fix || ' minutes'")} END,
  CASE WHEN i % 20 = 0 THEN NULL ELSE {_ts("c", "'+' || fix || ' minutes'")} END
FROM t
"""  # noqa: S608 - built from constants: nothing from outside reaches the text
_SQLITE_SURVEYS = f"""
INSERT INTO surveys (ticket_id, contact_id, channel, due_at, sent_at, score, answered_at,
  created_at)
SELECT id, 1, channel, resolved_at, resolved_at, 1 + (id * 31) % 5,
  {_ts("resolved_at", "'+2 hours'")}, resolved_at
FROM tickets WHERE id % 3 = 0 AND resolved_at IS NOT NULL
"""  # noqa: S608 - built from constants
_SQLITE_EVENTS = f"""
INSERT INTO ticket_events (ticket_id, kind, old_value, new_value, actor_type, created_at)
SELECT id, 'reopened', 'closed', 'reopened', 'customer', {_ts("resolved_at", "'+1 days'")}
FROM tickets WHERE id % 50 = 0 AND resolved_at IS NOT NULL
"""  # noqa: S608 - built from constants
_SQLITE_STATUS = _PG_STATUS
SPAN = 365 * 86400  # seconds in 2026
TABLES = "('tickets', 'surveys', 'ticket_events')"
# Plain secondary indexes only: primary keys and unique constraints stay (they check the rows).
_PG_INDEXES = f"""
SELECT i.indexname, i.indexdef FROM pg_indexes i
JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid
WHERE i.schemaname = 'public' AND i.tablename IN {TABLES} AND NOT x.indisunique
"""  # noqa: S608 - built from constants
_SQLITE_INDEXES = f"""
SELECT name, sql FROM sqlite_master
WHERE type = 'index' AND tbl_name IN {TABLES} AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'
"""  # noqa: S608 - built from constants


async def generate(store: Store, kind: str, count: int) -> float:
    """The year's history, made by the database; returns seconds."""
    started = time.perf_counter()
    postgres = kind == "postgres"
    async with store.write() as session:
        await session.execute(
            text(
                "INSERT INTO contacts (id, name, vip, created_at) "
                "VALUES (1, 'bench', false, CURRENT_TIMESTAMP)"
            )
        )
        await session.execute(text("INSERT INTO teams (id, name) VALUES (1, 'after-sales')"))
        for c in range(1, 7):
            await session.execute(
                text("INSERT INTO categories (id, name, team_id) VALUES (:id, :name, 1)"),
                {"id": c, "name": f"category {c}"},
            )
        # A bulk load: the secondary indexes are dropped, the rows inserted, the indexes built
        # again from their own definitions (a sorted build beats a million index inserts).
        found = await session.execute(text(_PG_INDEXES if postgres else _SQLITE_INDEXES))
        indexes = [(str(name), str(ddl)) for name, ddl in found.all()]
        for name, _ in indexes:
            await session.execute(text(f'DROP INDEX "{name}"'))
        tickets = _PG_TICKETS if postgres else _SQLITE_TICKETS
        await session.execute(text(tickets), {"n": count, "span": SPAN})
        await session.execute(text(_PG_SURVEYS if postgres else _SQLITE_SURVEYS))
        await session.execute(text(_PG_EVENTS if postgres else _SQLITE_EVENTS))
        # Raw SQL on SQLite compares text: the bound time is written as the rows are.
        since = QUARTER if postgres else QUARTER.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        await session.execute(text(_PG_STATUS if postgres else _SQLITE_STATUS), {"since": since})
        for _, ddl in indexes:
            await session.execute(text(ddl))
    async with store.write() as session:
        if postgres:
            await session.execute(text("SELECT setval('tickets_id_seq', :n)"), {"n": count})
    # Fresh statistics, as autovacuum (PostgreSQL) or a periodic ANALYZE (SQLite) would keep.
    if postgres:
        async with store.write_engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(text("VACUUM ANALYZE"))
    else:
        async with store.write() as session:
            await session.execute(text("ANALYZE"))
    return time.perf_counter() - started


async def monthly_report(store: Store) -> int:
    """Everything the report page asks for, for one month; returns the tickets received."""
    async with store.read() as session:
        figures = await summary(session, MONTH, ZONE)
        await satisfaction_by_category(session, MONTH)
        await charts(session, MONTH, ZONE)
        where = drill_conditions(session, MONTH, ZONE, Drill())
        await session.scalar(select(func.count()).select_from(Ticket).where(*where))
        await session.execute(
            select(Ticket).where(*where).order_by(Ticket.created_at, Ticket.id).limit(50)
        )
    return figures.received


async def status_times(store: Store) -> int:
    """Time in each status for the month (the page's separate, slower request)."""
    async with store.read() as session:
        return sum(n for _, n, _ in await time_in_status(session, MONTH))


async def count_all(store: Store) -> int:
    async with store.read() as session:
        return int(await session.scalar(text("SELECT count(*) FROM tickets")) or 0)


async def timed(runs: int, job: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    """The median seconds of ``runs`` runs, and what the job returned."""
    seconds: list[float] = []
    value = 0
    for _ in range(runs):
        started = time.perf_counter()
        value = await job()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), value


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", nargs="+", default=["postgres", "sqlite"])
    args = parser.parse_args()
    results: dict[str, Any] = {"tickets": args.tickets, "runs": args.runs, "month": "2026-11"}
    for kind in args.db:
        async with fresh_database(kind) as url:
            store = Store(url)
            try:
                made = await generate(store, kind, args.tickets)
                print(f"{kind:8} history of {args.tickets} tickets made in {made:.1f} s")
                baseline, counted = await timed(args.runs, partial(count_all, store))
                report, received = await timed(args.runs, partial(monthly_report, store))
                statuses, changes = await timed(args.runs, partial(status_times, store))
            finally:
                await store.close()
        assert counted == args.tickets, counted
        ratio = report / baseline
        results[kind] = {
            "generate_s": round(made, 1),
            "count_all_s": round(baseline, 4),
            "monthly_report_s": round(report, 3),
            "ratio": round(ratio, 1),
            "received_in_month": received,
            "status_times_s": round(statuses, 3),
            "status_changes_in_month": changes,
            # The machine is shared: how busy it was, to read the seconds by.
            "load_average_1m": round(os.getloadavg()[0], 1),
        }
        print(
            f"{kind:8} count(*) {baseline:.3f} s  monthly report {report:.3f} s  "
            f"ratio {ratio:.1f}  ({received} tickets received in the month); "
            f"time in each status {statuses:.3f} s ({changes} status changes)"
        )
    print(f"written: {write_results('reports', results)}")


if __name__ == "__main__":
    asyncio.run(main())
