"""What an ingest batch and a routing batch cost: CPU per batch and per message, without HTTP.

Usage: ``python bench/ingest_batches.py [--sizes 1 40] [--rounds 60] [--db sqlite postgres]``

For each batch size B, ``rounds`` times: a batch of B new conversations (each opens a ticket),
then the router's batch escalating those B tickets (the knowledge base declined: as in
``bench/telegram.py``), then a batch of their B follow-ups. Each is one transaction, written by
``Ingest``'s or ``Router``'s own batch step, as their group commits do. The CPU time of this
process (the driver's thread included; not the database server's) is taken around each batch;
the median per message is printed. Two sizes give the fixed cost of a batch and the cost of
one message more: ``cost(B) = fixed + B * per_message``, solved from the smallest and the
largest size. A timing in CPU seconds, which the machine's other work moves less than wall
time; read the batch sizes behind HTTP in ``bench/telegram.py``'s docstring. To compare two
versions of the code in alternation, run it through ``bench/ab.py``. Writes
``bench/results/ingest_batches.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as a script, bench/ comes first on sys.path, and bench/email.py and bench/telegram.py
# (names the issues fix) would shadow the email and telegram packages: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database, write_results
from bench.ingest import message
from gateway.dispatch import LeastLoaded
from gateway.ingest import Ingest
from gateway.routing import Router, _Decision
from gateway.store import Store
from knowledge_base.base import Decline, NeverMatches

PARTS = {"new_ms": "new conversations", "routing_ms": "their routing", "follow_up_ms": "follow-ups"}


async def per_message_ms(url: str, size: int, rounds: int) -> dict[str, float]:
    """Median CPU ms per message of a batch of new conversations, of routing them (each
    escalates), and of their follow-ups."""
    store = Store(url)
    costs: dict[str, list[float]] = {part: [] for part in PARTS}
    try:
        ingest = Ingest(store, zone=ZoneInfo("Asia/Shanghai"))
        router = Router(store, NeverMatches(), dispatcher=LeastLoaded())
        for r in range(rounds):
            first = 2 * size * r
            started = time.process_time()
            opened = await ingest._write([message(first + 2 * k) for k in range(size)])
            costs["new_ms"].append((time.process_time() - started) / size * 1000)
            decisions = [_Decision(o.message_id, Decline(), asked_kb=True) for o in opened]
            started = time.process_time()
            await router._write(decisions)  # one batch, as the router's group commit writes it
            costs["routing_ms"].append((time.process_time() - started) / size * 1000)
            started = time.process_time()
            await ingest._write([message(first + 2 * k + 1) for k in range(size)])
            costs["follow_up_ms"].append((time.process_time() - started) / size * 1000)
    finally:
        await store.close()
    return {part: statistics.median(values) for part, values in costs.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 40])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    sizes: list[int] = sorted(set(args.sizes))
    if len(sizes) < 2 or sizes[0] < 1:
        parser.error("--sizes: at least two different batch sizes, each >= 1")
    results: dict[str, Any] = {"rounds": args.rounds, "sizes": sizes}
    for kind in args.db:
        measured: dict[int, dict[str, float]] = {}
        for size in sizes:
            async with fresh_database(kind) as url:
                measured[size] = await per_message_ms(url, size, args.rounds)
        small, large = sizes[0], sizes[-1]
        split = {}
        for part in PARTS:
            # cost(B) = fixed + B * one; from B * per-message at the smallest and largest B.
            low, high = small * measured[small][part], large * measured[large][part]
            one = (high - low) / (large - small)
            split[part] = {
                "batch_fixed_ms": round(low - small * one, 2),
                "per_message_ms": round(one, 3),
            }
        results[kind] = {
            "per_message_at_size": {
                str(size): {part: round(value, 3) for part, value in costs.items()}
                for size, costs in measured.items()
            },
            "split": split,
        }
        for part, label in PARTS.items():
            at = "  ".join(f"B={size}: {measured[size][part]:.3f}" for size in sizes)
            fixed, one = split[part]["batch_fixed_ms"], split[part]["per_message_ms"]
            print(
                f"{kind:8} {label:17} CPU ms/message {at};  batch {fixed:.2f} ms"
                f" + {one:.3f} ms a message"
            )
    print(f"written: {write_results('ingest_batches', results)}")


if __name__ == "__main__":
    asyncio.run(main())
