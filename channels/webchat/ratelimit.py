"""Token buckets per key (a chat session, an IP address), in this process's memory.

Each key may spend ``burst`` at once and then ``rate`` per second. A bucket that has refilled is
the same as no bucket, so full ones are dropped and memory stays proportional to the keys that
are busy right now. Limits are per process: behind a load balancer with N processes a client can
get up to N times the rate, which is acceptable for abuse protection (not for billing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``allow(key)`` is True while ``key`` stays within ``burst`` and ``rate`` per second."""

    def __init__(
        self,
        *,
        burst: int,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        prune_every: int = 1024,
    ) -> None:
        self.burst = float(burst)
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._prune_every = prune_every
        self._calls = 0

    def allow(self, key: str, cost: float = 1.0) -> bool:
        """Spend ``cost`` from ``key``'s bucket if it has it."""
        now = self.clock()
        self._calls += 1
        if self._calls % self._prune_every == 0:
            self._prune(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens < cost:
            return False
        bucket.tokens -= cost
        return True

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` may spend ``cost`` again."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + (self.clock() - bucket.updated) * self.rate)
        return max(0.0, (cost - tokens) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
