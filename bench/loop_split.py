"""Where the gateway's event loop spends its CPU, by library: how much any one change could win.

Usage: ``python bench/loop_split.py [--db postgres] [--per-chat 2] [--updates 20000]``

Runs ``bench/telegram.py --webhook-only`` under py-spy (``pip install py-spy``; sampling with
``--gil``, so only time holding the GIL counts) and sorts the samples of the event loop
(stacks through ``run_forever``: start-up, imports and the load generator's process are left
out) by the library of the innermost frame: SQLAlchemy, asyncpg, aiohttp, asyncio, json,
pydantic, our own code (``gateway/``, ``channels/``), the rest. A second figure counts the
samples with SQLAlchemy anywhere on the stack (the driver's work beneath it included).

A library's own share is what replacing it by something free would give back at most: the
webhook's rate on PostgreSQL needs a quarter of the loop's CPU gone (README, "Telegram on
PostgreSQL"), and this says whether any one library holds that much. Prints the shares and
writes ``bench/results/loop_split.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results

LIBRARIES = (
    ("sqlalchemy", "sqlalchemy/"),
    ("asyncpg", "asyncpg/"),
    ("aiosqlite", "aiosqlite/"),
    ("aiohttp", "aiohttp/"),
    ("asyncio", "asyncio/"),
    ("selectors", "selectors.py"),
    ("json", "json/"),
    ("pydantic", "pydantic"),
    ("greenlet", "greenlet"),
    ("ours", "gateway/"),
    ("ours", "channels/"),
)


def library(frame: str) -> str:
    """The library a py-spy frame (``function (path:line)``) belongs to."""
    where = frame.rpartition("(")[2]
    for name, marker in LIBRARIES:
        if marker in where:
            return name
    return "other"


def split(raw: Path) -> dict[str, float]:
    """Shares (percent) of the event loop's samples in py-spy's ``raw`` output."""
    own: Counter[str] = Counter()
    under_sqlalchemy = total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "run_forever" not in stack:
            continue
        frames = stack.split(";")
        samples = int(count)
        total += samples
        own[library(frames[-1])] += samples
        if any(library(f) == "sqlalchemy" for f in frames):
            under_sqlalchemy += samples
    if not total:
        raise SystemExit("no samples of the event loop: did the run start?")
    shares = {name: round(100 * n / total, 1) for name, n in own.most_common()}
    shares["sqlalchemy_on_stack"] = round(100 * under_sqlalchemy / total, 1)
    shares["samples"] = total
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--per-chat", type=int, default=2)
    parser.add_argument("--updates", type=int, default=20000)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    telegram = Path(__file__).resolve().parent / "telegram.py"
    with tempfile.TemporaryDirectory() as directory:
        raw = Path(directory) / "loop.txt"
        spied = [spy, "record", "--gil", "-r", "250", "-f", "raw", "-o", str(raw), "--"]
        run = [sys.executable, str(telegram), "--webhook-only", "--db", args.db]
        sizes = ["--per-chat", str(args.per_chat), "--updates", str(args.updates)]
        subprocess.run([*spied, *run, *sizes], check=True)
        shares = split(raw)
    print(f"{args.db}, {args.per_chat} per chat: the event loop's samples by innermost library")
    for name, share in shares.items():
        print(f"  {name:20s} {share}")
    results = {"db": args.db, "per_chat": args.per_chat, "updates": args.updates, **shares}
    print("written:", write_results("loop_split", results))


if __name__ == "__main__":
    main()
