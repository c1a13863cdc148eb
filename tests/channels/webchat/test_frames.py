"""The wire format and the rate limiter, from table fixtures: no network, no store."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from channels.webchat import frames
from channels.webchat.frames import FrameError, parse_frame
from channels.webchat.ratelimit import RateLimiter

CASES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "webchat" / "client_frames.json").read_text("utf-8")
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_client_frames(name: str) -> None:
    case = CASES[name]
    raw = json.dumps(case["raw"], ensure_ascii=False)
    if "parsed" in case:
        kind, fields = case["parsed"]
        parsed = parse_frame(raw, max_text_bytes=4096)
        assert type(parsed) is getattr(frames, kind)
        assert json.loads(json.dumps(asdict(parsed))) == fields  # tuples as JSON lists
    else:
        code, field = case["error"]
        with pytest.raises(FrameError) as caught:
            parse_frame(raw, max_text_bytes=4096)
        assert (caught.value.code, caught.value.field) == (code, field)
        assert caught.value.frame()["type"] == "error"


def test_text_size_counts_utf8_bytes() -> None:
    fits = json.dumps(
        {"type": "message", "client_id": "a", "text": "好" * 1365}, ensure_ascii=False
    )
    parse_frame(fits, max_text_bytes=4096)  # 4095 bytes
    with pytest.raises(FrameError, match="too_large"):
        parse_frame(fits.replace("好", "好好", 1), max_text_bytes=4096)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst=20, rate=5.0, clock=clock)
    assert [limiter.allow("s") for _ in range(21)] == [True] * 20 + [False]
    assert limiter.retry_after("s") == pytest.approx(0.2)
    clock.now += 0.2
    assert limiter.allow("s")
    assert not limiter.allow("s")
    assert limiter.allow("other")  # buckets are per key
    clock.now += 1.0
    assert [limiter.allow("s") for _ in range(6)] == [True] * 5 + [False]


def test_rate_limiter_forgets_refilled_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst=2, rate=1.0, clock=clock, prune_every=10)
    for n in range(9):
        limiter.allow(f"k{n}")
    assert len(limiter) == 9
    clock.now += 5
    limiter.allow("last")  # the tenth call prunes the full buckets
    assert len(limiter) == 1
