"""The one backoff policy every retry loop uses: exponential, capped, jittered."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """Delays ``base, 2*base, 4*base ...`` up to ``cap``, each with up to ``jitter`` of it added.

    Call :meth:`next` after a failure for the delay to wait, :meth:`reset` after a success.
    """

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.2
    _failures: int = 0

    def next(self) -> float:
        delay: float = min(self.cap, self.base * 2.0**self._failures)
        self._failures += 1
        # Jitter spreads reconnecting clients apart; it is not security-relevant.
        return delay * (1 + self.jitter * random.random())  # noqa: S311

    def reset(self) -> None:
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures
