"""The uncalibrated scorer: one fused score per (question, entry).

Three signals, each computed against the entry's phrasings (title and examples):

- a softmax classifier trained on the phrasings' sentence vectors (it learns which
  directions separate entries, so it beats nearest-neighbour on paraphrases);
- the best cosine between the question and any phrasing (nearest examples);
- the best lexical match (BM25 normalised to about [0, 1]) over words and character n-grams.

Sentence vectors are centred on the knowledge base's mean vector before use: e5 vectors
share a large common component (all cosines are about 0.7-0.9), and removing it both
spreads the cosines and lets the classifier train far better (CLINC150 val top-1 0.92 ->
0.95 and Chinese FAQ 0.56 -> 0.75 in our measurements).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from knowledge_base.classifier import SoftmaxClassifier, train_softmax
from knowledge_base.lexical import LexicalIndex

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class ScoringSettings:
    """Weights of the signals and the classifier's training schedule.

    The defaults were chosen on CLINC150 validation and a split of a Chinese FAQ set, and
    are deliberately round numbers; thresholds are not set here but calibrated per KB.
    """

    semantic_weight: float = 0.3
    lexical_weight: float = 0.3
    classifier_steps: int = 100
    classifier_learning_rate: float = 0.01
    classifier_init_scale: float = 20.0
    classifier_l2: float = 1e-4
    # 1,024 rows a step: half the training cost of 2,048 (the build of 1,000 entries x 10
    # phrasings is mostly training), same validation top-1 (CLINC150 val 0.959 vs 0.956,
    # Chinese FAQ val 0.771 both; `python bench/kb_eval.py --validation`).
    classifier_batch_size: int = 1024


def center(vectors: Matrix, mean: Matrix) -> Matrix:
    """Subtract ``mean`` and rescale each row to unit length."""
    shifted = vectors - mean
    out: Matrix = shifted / np.maximum(np.linalg.norm(shifted, axis=1, keepdims=True), 1e-9)
    return out.astype(np.float32, copy=False)


class Scorer:
    """Scores questions against entries; built from phrasing texts, labels and vectors.

    Args:
        texts: Every phrasing, grouped by entry (all of entry 0's, then entry 1's, ...).
        labels: The entry index of each phrasing (non-decreasing).
        vectors: The sentence vector of each phrasing.
        n_entries: Number of entries; every entry must have at least one phrasing.
        settings: Signal weights and training schedule.
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: npt.NDArray[np.int64],
        vectors: Matrix,
        n_entries: int,
        settings: ScoringSettings,
    ) -> None:
        if len(texts) != len(labels) or len(texts) != len(vectors):
            raise ValueError("texts, labels and vectors must have one row per phrasing")
        if np.any(np.diff(labels) < 0) or set(labels.tolist()) != set(range(n_entries)):
            raise ValueError("phrasings must be grouped by entry and cover every entry")
        self.settings = settings
        self.n_entries = n_entries
        self._mean: Matrix = vectors.mean(axis=0, keepdims=True).astype(np.float32)
        self._vectors = center(vectors, self._mean)
        self._starts = np.searchsorted(labels, np.arange(n_entries)).astype(np.int64)
        self._classifier: SoftmaxClassifier = train_softmax(
            self._vectors,
            labels,
            n_entries,
            l2=settings.classifier_l2,
            steps=settings.classifier_steps,
            learning_rate=settings.classifier_learning_rate,
            init_scale=settings.classifier_init_scale,
            batch_size=settings.classifier_batch_size,
        )
        self._lexical = LexicalIndex(texts) if settings.lexical_weight else None

    def scores(self, texts: Sequence[str], vectors: Matrix) -> Matrix:
        """Fused scores, ``(len(texts), n_entries)``; higher is better."""
        q = center(vectors, self._mean)
        fused = self._classifier.probabilities(q)
        s = self.settings
        if s.semantic_weight:
            nearest = np.maximum.reduceat(q @ self._vectors.T, self._starts, axis=1)
            fused += s.semantic_weight * nearest
        if self._lexical is not None:
            for row, text in enumerate(texts):
                bm25 = self._lexical.score(text).bm25
                fused[row] += s.lexical_weight * np.maximum.reduceat(bm25, self._starts)
        return fused
