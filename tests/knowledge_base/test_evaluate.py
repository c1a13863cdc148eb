from __future__ import annotations

import io
import json
from pathlib import Path

from knowledge_base.encoder import HashingEncoder
from knowledge_base.evaluate import main, run_match
from tests.knowledge_base.conftest import SHOP_KB


def _write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        "".join(
            json.dumps(
                {"id": e.id, "title": e.title, "examples": list(e.examples), "answer": "A:" + e.id},
                ensure_ascii=False,
            )
            + "\n"
            for e in SHOP_KB
        ),
        encoding="utf-8",
    )
    queries = tmp_path / "q.jsonl"
    rows = [
        {"id": "q1", "text": "I forgot my password"},
        {"id": 2, "text": "what is the capital of mongolia"},
        {"id": "q3", "text": "退款多久到账"},
    ]
    queries.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return kb, queries


def test_run_match_writes_one_line_per_query(tmp_path: Path) -> None:
    kb, queries = _write_inputs(tmp_path)
    out = io.StringIO()
    assert run_match(kb, queries, out, encoder=HashingEncoder(dim=512)) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["id"] for line in lines] == ["q1", 2, "q3"]
    ids = {e.id for e in SHOP_KB}
    for line in lines:
        assert set(line) == {"id", "entry_id", "score", "top_entry_id"}
        assert isinstance(line["score"], float)
        assert line["top_entry_id"] in ids
        assert line["entry_id"] in (None, line["top_entry_id"])
    assert lines[0]["top_entry_id"] == "password"
    assert lines[2]["top_entry_id"] == "refund"


def test_run_match_reports_malformed_input(tmp_path: Path) -> None:
    kb, _ = _write_inputs(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no id"}\n')
    assert run_match(kb, bad, io.StringIO(), encoder=HashingEncoder()) == 2


def test_main_with_bundled_e5_writes_out_file(tmp_path: Path) -> None:
    kb, queries = _write_inputs(tmp_path)
    out = tmp_path / "r.jsonl"
    assert main(["--kb", str(kb), "--queries", str(queries), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["top_entry_id"] for line in lines][0::2] == ["password", "refund"]
    assert lines[0]["entry_id"] == "password"
