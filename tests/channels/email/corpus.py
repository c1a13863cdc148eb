"""The mail corpus in ``tests/fixtures/email``: its files and the expected results table."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"


@cache
def expected() -> dict[str, Any]:
    """``expected.json``: one entry per mail, in delivery order."""
    data: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    return data


def mails() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = expected()["mails"]
    return entries


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
