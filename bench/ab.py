"""Two versions of the code, one benchmark, in alternation: the change's effect as a ratio.

Usage: ``python bench/ab.py --base REV [--pairs 5] -- bench/ingest_batches.py [its options]``

This project's machines are shared and their speed drifts by a third within minutes, so two
versions timed one after the other compare the minutes, not the code. Here the benchmark runs
``--pairs`` times on each version, alternating (base then this tree, then this tree then base,
and so on), and each pair gives a ratio: this tree's figure over the base's, taken a minute
apart. The median ratio of every number the benchmark writes is printed.

The base is checked out into a temporary git worktree, and this tree's ``bench/`` is copied
over it: the same measuring code runs against both versions of the gateway. Each run's
figures are read from the ``bench/results/*.json`` it wrote. Writes ``bench/results/ab.json``
(the base, this tree's commit, the command, and per figure both medians and the median ratio).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ comes first on sys.path, and bench/email.py (a name the issue fixes)
# would shadow the email package: put the root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import write_results


def figures(document: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a results document, by dotted path (``sqlite.split.new_ms...``)."""
    found: dict[str, float] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            found.update(figures(value, f"{prefix}{key}."))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.update(figures(value, f"{prefix}{index}."))
    elif isinstance(document, int | float) and not isinstance(document, bool):
        found[prefix.rstrip(".")] = float(document)
    return found


def run_once(tree: Path, script: str, options: list[str]) -> dict[str, float]:
    """Run the benchmark in ``tree``; the figures of the results file it wrote."""
    results = tree / "bench" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("*.json")}
    subprocess.run([sys.executable, str(tree / script), *options], cwd=tree, check=True)
    written = [p for p in results.glob("*.json") if before.get(p) != p.stat().st_mtime_ns]
    if len(written) != 1:
        raise SystemExit(f"{script} wrote {len(written)} results files, expected one")
    return figures(json.loads(written[0].read_text(encoding="utf-8"))["results"])


def compare(base: list[dict[str, float]], head: list[dict[str, float]]) -> dict[str, Any]:
    """Per figure both sides: medians, and the median of the paired ratios head / base."""
    compared: dict[str, Any] = {}
    for key in sorted(set.intersection(*(set(run) for run in base + head))):
        pairs = [h[key] / b[key] for b, h in zip(base, head, strict=True) if b[key]]
        compared[key] = {
            "base_median": statistics.median(run[key] for run in base),
            "head_median": statistics.median(run[key] for run in head),
            "ratio_median": round(statistics.median(pairs), 3) if pairs else None,
        }
    return compared


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- bench/<script>.py [options]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or not command[0].startswith("bench/") or command[0] == "bench/ab.py":
        parser.error("give the benchmark after --, as bench/<script>.py [its options]")
    if args.pairs < 1:
        parser.error("--pairs: at least 1")
    script, options = command[0], command[1:]
    base_rev = git("rev-parse", args.base)
    head_rev = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    base_runs: list[dict[str, float]] = []
    head_runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="gateway-ab-") as scratch:
        worktree = Path(scratch) / "base"
        git("worktree", "add", "--detach", str(worktree), base_rev)
        try:
            shutil.copytree(ROOT / "bench", worktree / "bench", dirs_exist_ok=True)
            for pair in range(args.pairs):
                # ABBA: a drift in the machine's speed weighs on both sides alike.
                order = [(worktree, base_runs), (ROOT, head_runs)]
                for tree, runs in order if pair % 2 == 0 else reversed(order):
                    runs.append(run_once(tree, script, options))
                print(f"pair {pair + 1}/{args.pairs} done", flush=True)
        finally:
            git("worktree", "remove", "--force", str(worktree))
    compared = compare(base_runs, head_runs)
    for key, row in compared.items():
        print(
            f"{key:60} base {row['base_median']:10.3f}  this {row['head_median']:10.3f}"
            f"  ratio {row['ratio_median']}"
        )
    results = {
        "base": base_rev,
        "head": head_rev + (" with uncommitted changes" if dirty else ""),
        "command": command,
        "pairs": args.pairs,
        "figures": compared,
    }
    print(f"written: {write_results('ab', results)}")


if __name__ == "__main__":
    main()
