"""The pure matcher: build from entries, then answer, clarify or decline each question."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from threadpoolctl import ThreadpoolController

from knowledge_base.calibration import CalibrationSettings, Thresholds, calibrate
from knowledge_base.encoder import TextEncoder
from knowledge_base.entry import KBEntry
from knowledge_base.scoring import Matrix, Scorer, ScoringSettings

# On a small machine OpenBLAS's worker threads (which spin after each product) and the e5
# engine's OpenMP threads fight for the same cores: a single question's p99 went from about
# 35 ms to 130-270 ms. A question's products are tiny, so a few questions run BLAS on one
# thread; builds and large batches (evaluation) keep every thread.
_blas = ThreadpoolController()
_FEW_QUESTIONS = 8


def _query_threads(n_texts: int) -> contextlib.AbstractContextManager[object]:
    if n_texts > _FEW_QUESTIONS:
        return contextlib.nullcontext()
    limited: contextlib.AbstractContextManager[object] = _blas.limit(limits=1, user_api="blas")
    return limited


class Outcome(StrEnum):
    """What to do with a question."""

    ANSWER = "answer"
    CLARIFY = "clarify"
    DECLINE = "decline"


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The matcher's verdict on one question.

    Attributes:
        outcome: Answer with the first candidate, ask about the candidates, or decline.
        candidates: ``(entry index, score)`` best first: one for an answer, two for a
            clarification, the best one (for logs) for a decline.
    """

    outcome: Outcome
    candidates: tuple[tuple[int, float], ...]


class Matcher:
    """An immutable, calibrated index over a knowledge base.

    Build with :meth:`build`; :meth:`match` and :meth:`match_many` are thread-safe and pure
    (apart from calling the encoder).
    """

    def __init__(
        self,
        entries: tuple[KBEntry, ...],
        scorer: Scorer | None,
        thresholds: Thresholds,
        encoder: TextEncoder,
    ) -> None:
        self.entries = entries
        self.thresholds = thresholds
        self._scorer = scorer
        self._encoder = encoder

    @classmethod
    def build(
        cls,
        entries: Sequence[KBEntry],
        encoder: TextEncoder,
        *,
        scoring: ScoringSettings | None = None,
        calibration: CalibrationSettings | None = None,
        thresholds: Thresholds | None = None,
    ) -> Matcher:
        """Encode the phrasings, calibrate the thresholds and train the final scorer.

        Args:
            entries: The knowledge base; entries without any phrasing are skipped.
            encoder: Sentence encoder for phrasings and questions.
            scoring: Signal weights; defaults when None.
            calibration: How to calibrate; defaults when None.
            thresholds: Fixed thresholds instead of calibrating (for tests and experiments).
        """
        usable = tuple(e for e in entries if e.phrasings)
        settings = scoring or ScoringSettings()
        if not usable:
            return cls((), None, Thresholds(answer=float("inf"), clarify=float("inf")), encoder)
        texts = [t for e in usable for t in e.phrasings]
        labels = np.array([i for i, e in enumerate(usable) for _ in e.phrasings], dtype=np.int64)
        vectors = encoder.encode(texts)
        # The final scorer and the calibration folds train side by side, one BLAS thread each:
        # as fast as two-thread BLAS on an idle machine, and on a busy one far faster (BLAS
        # threads waiting on each other for a core made a build 1.7x slower, measured here).
        workers = max(1, min(4, os.cpu_count() or 1))
        with (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kb-train") as pool,
            _blas.limit(limits=1, user_api="blas"),
        ):
            final = pool.submit(Scorer, texts, labels, vectors, len(usable), settings)
            if thresholds is None:
                thresholds = calibrate(
                    texts, labels, vectors, len(usable), settings, calibration, pool=pool
                )
            scorer = final.result()
        return cls(usable, scorer, thresholds, encoder)

    def match(self, text: str) -> MatchResult:
        """Match one question."""
        return self.match_many([text])[0]

    def match_many(self, texts: Sequence[str]) -> list[MatchResult]:
        """Match a batch of questions (one encoder call for all of them)."""
        if self._scorer is None or not texts:
            return [MatchResult(Outcome.DECLINE, ()) for _ in texts]
        with _query_threads(len(texts)):
            vectors = self._encoder.encode(list(texts))
            scores = self._scorer.scores(texts, vectors)
        return [self._decide(row) for row in scores]

    def scores(self, texts: Sequence[str]) -> Matrix:
        """Raw fused scores, ``(len(texts), len(entries))``; for evaluation and debugging."""
        if self._scorer is None:
            return np.zeros((len(texts), 0), dtype=np.float32)
        with _query_threads(len(texts)):
            return self._scorer.scores(texts, self._encoder.encode(list(texts)))

    def _decide(self, row: Matrix) -> MatchResult:
        if len(row) == 1:
            best = (0, float(row[0]))
            if best[1] >= self.thresholds.answer:
                return MatchResult(Outcome.ANSWER, (best,))
            return MatchResult(Outcome.DECLINE, (best,))
        first, second = (int(i) for i in np.argsort(-row, kind="stable")[:2])
        top = (first, float(row[first]))
        runner_up = (second, float(row[second]))
        if top[1] >= self.thresholds.answer:
            return MatchResult(Outcome.ANSWER, (top,))
        if runner_up[1] >= self.thresholds.clarify:
            return MatchResult(Outcome.CLARIFY, (top, runner_up))
        return MatchResult(Outcome.DECLINE, (top,))
