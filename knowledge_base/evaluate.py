"""Batch matching for outside evaluation: ``gateway kb match --kb KB --queries Q [--out R]``.

Input: a knowledge base file (JSON Lines ``{"id", "title", "examples": [...], "answer"}``, or
YAML/CSV, see :mod:`knowledge_base.loaders`) and a JSON Lines file of ``{"id", "text"}``
queries. Output, one line per query in input order::

    {"id": ..., "entry_id": <id or null when declined>, "score": <float>,
     "top_entry_id": <best entry even when declined>}

The matcher's own calibrated default threshold decides; a clarification (two close
candidates) is not an answer, so it is written as declined.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from knowledge_base.encoder import CachedEncoder, E5Encoder, TextEncoder
from knowledge_base.loaders import KBFormatError, load_entries
from knowledge_base.matcher import Matcher, Outcome

_BATCH = 256


def read_queries(path: Path) -> list[tuple[str, str]]:
    """``(id, text)`` pairs from a JSON Lines file.

    Raises:
        KBFormatError: On a line that is not an object with ``id`` and ``text``.
    """
    queries: list[tuple[str, str]] = []
    with path.open(encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                queries.append((record["id"], str(record["text"])))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise KBFormatError(f"{path}: line {number}: expected {{'id', 'text'}}") from exc
    return queries


def run_match(
    kb_path: Path, queries_path: Path, out: TextIO, *, encoder: TextEncoder | None = None
) -> int:
    """Match every query against the knowledge base and write one JSON line per query.

    Args:
        kb_path: The knowledge base file.
        queries_path: JSON Lines queries.
        out: Where the result lines go.
        encoder: Sentence encoder; the bundled e5 model by default.

    Returns:
        The process exit status: 0 on success, 2 when an input file is malformed (the
        reason is printed to stderr).
    """
    try:
        entries = load_entries(kb_path)
        queries = read_queries(queries_path)
    except (KBFormatError, OSError) as exc:
        print(f"kb match: {exc}", file=sys.stderr)
        return 2
    matcher = Matcher.build(entries, encoder or CachedEncoder(E5Encoder()))
    for start in range(0, len(queries), _BATCH):
        batch = queries[start : start + _BATCH]
        results = matcher.match_many([text for _, text in batch])
        for (query_id, _), result in zip(batch, results, strict=True):
            top_index, top_score = result.candidates[0] if result.candidates else (None, 0.0)
            top_id = matcher.entries[top_index].id if top_index is not None else None
            line = {
                "id": query_id,
                "entry_id": top_id if result.outcome is Outcome.ANSWER else None,
                "score": round(float(top_score), 6),
                "top_entry_id": top_id,
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    out.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m knowledge_base.evaluate --kb KB --queries Q [--out R]``."""
    parser = argparse.ArgumentParser(prog="kb match", description=__doc__.split("\n")[0])
    parser.add_argument("--kb", type=Path, required=True, help="knowledge base file")
    parser.add_argument("--queries", type=Path, required=True, help="JSON Lines queries")
    parser.add_argument("--out", type=Path, help="result file (default: stdout)")
    args = parser.parse_args(argv)
    if args.out is None:
        return run_match(args.kb, args.queries, sys.stdout)
    with args.out.open("w", encoding="utf-8") as fh:
        return run_match(args.kb, args.queries, fh)


if __name__ == "__main__":
    raise SystemExit(main())
