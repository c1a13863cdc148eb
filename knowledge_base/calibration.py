"""Choose the decline threshold on the knowledge base itself, by cross-validation.

Each fold hides some phrasings of every entry (they play in-scope questions) and a few
whole entries (their phrasings play out-of-scope questions: the right verdict is to decline,
because their entry is "missing"). A scorer trained on the rest scores them, and the answer
threshold is the lowest score at which the estimated wrong-answer rate stays within target.
No labelled out-of-scope data is needed, so the default works on any knowledge base.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from knowledge_base.scoring import Matrix, Scorer, ScoringSettings


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When to answer and when to ask.

    Attributes:
        answer: Answer when the best entry's score is at least this.
        clarify: Otherwise, ask the customer to choose when the second-best entry's score
            is at least this (both candidates are then close and fairly likely).
        calibrated: False when the knowledge base was too small to calibrate on.
    """

    answer: float
    clarify: float
    calibrated: bool = True


@dataclass(frozen=True, slots=True)
class CalibrationSettings:
    """How thresholds are calibrated.

    Attributes:
        target_wrong_rate: Highest acceptable share of wrong answers among answers.
        out_of_scope_share: Assumed share of questions the KB cannot answer; the calibration
            weighs its stand-in out-of-scope questions to this share.
        folds: Cross-validation folds.
        held_out_entry_share: Share of entries hidden per fold as out-of-scope stand-ins.
        min_questions: Below this many in-scope stand-ins, fall back to fixed thresholds.
        seed: Makes the folds reproducible.
    """

    target_wrong_rate: float = 0.05
    out_of_scope_share: float = 0.2
    folds: int = 3
    held_out_entry_share: float = 0.1
    min_questions: int = 20
    seed: int = 20240521


def fallback_thresholds(settings: ScoringSettings) -> Thresholds:
    """Fixed thresholds for a knowledge base too small to calibrate on: half the top score."""
    top = 1.0 + settings.semantic_weight + settings.lexical_weight
    return Thresholds(answer=0.55 * top, clarify=0.4 * top, calibrated=False)


def pick_threshold(
    scores: npt.NDArray[np.float64],
    correct: npt.NDArray[np.bool_],
    weights: npt.NDArray[np.float64],
    target: float,
) -> float | None:
    """The lowest threshold whose weighted wrong-answer rate is within ``target``.

    Args:
        scores: Confidence of each stand-in question.
        correct: Whether answering it would be right (always False for out-of-scope ones).
        weights: Weight of each question.
        target: Highest acceptable wrong-answer rate.

    Returns:
        The threshold, or None when even the most confident answers miss the target.
    """
    order = np.argsort(-scores, kind="stable")
    answered = np.cumsum(weights[order])
    wrong = np.cumsum(weights[order] * ~correct[order])
    rate = wrong / np.maximum(answered, 1e-12)
    ok = np.flatnonzero(rate <= target)
    if ok.size == 0:
        return None
    # Only cut between distinct scores: ties would otherwise be half answered.
    last = int(ok[-1])
    sorted_scores = scores[order]
    while last + 1 < len(sorted_scores) and sorted_scores[last + 1] == sorted_scores[last]:
        last -= 1
        if last < 0:
            return None
    return float(sorted_scores[last])


def calibrate(
    texts: Sequence[str],
    labels: npt.NDArray[np.int64],
    vectors: Matrix,
    n_entries: int,
    scoring: ScoringSettings,
    settings: CalibrationSettings | None = None,
    *,
    pool: Executor | None = None,
) -> Thresholds:
    """Cross-validate the scorer over the phrasings and return calibrated thresholds.

    Args:
        texts: Every phrasing, grouped by entry.
        labels: Entry index of each phrasing (non-decreasing).
        vectors: Sentence vector of each phrasing.
        n_entries: Number of entries.
        scoring: The scorer settings that will be used for answering.
        settings: Calibration settings; defaults when None.
        pool: Runs the folds concurrently when given (numpy releases the GIL in its products).
    """
    cal = settings or CalibrationSettings()
    rng = random.Random(cal.seed)  # noqa: S311 - reproducible folds, not security
    by_entry = [np.flatnonzero(labels == e).tolist() for e in range(n_entries)]
    for rows in by_entry:
        rng.shuffle(rows)
    entry_order = list(range(n_entries))
    rng.shuffle(entry_order)
    n_hidden = max(1, round(cal.held_out_entry_share * n_entries)) if n_entries >= 4 else 0

    def run_fold(fold: int) -> list[tuple[float, float, bool, bool, bool]]:
        hidden = set(entry_order[fold * n_hidden : (fold + 1) * n_hidden]) if n_hidden else set()
        train_rows: list[int] = []
        query_rows: list[int] = []
        query_gold: list[int] = []
        kept = [e for e in range(n_entries) if e not in hidden]
        new_index = {e: i for i, e in enumerate(kept)}
        for e in range(n_entries):
            rows = by_entry[e]
            if e in hidden:
                query_rows.extend(rows[:3])
                query_gold.extend([-1] * min(3, len(rows)))
                continue
            held = [r for k, r in enumerate(rows) if k % cal.folds == fold and k > 0]
            train_rows.extend(r for r in rows if r not in held)
            query_rows.extend(held)
            query_gold.extend([new_index[e]] * len(held))
        if len(kept) < 2 or not query_rows:
            return []
        train_rows.sort(key=lambda r: (new_index[int(labels[r])], r))
        scorer = Scorer(
            [texts[r] for r in train_rows],
            np.array([new_index[int(labels[r])] for r in train_rows], dtype=np.int64),
            vectors[train_rows],
            len(kept),
            scoring,
        )
        fused = scorer.scores([texts[r] for r in query_rows], vectors[query_rows])
        best2 = np.argsort(-fused, axis=1)[:, :2]
        out = []
        for row, gold in enumerate(query_gold):
            first, second = int(best2[row, 0]), int(best2[row, 1])
            out.append(
                (
                    float(fused[row, first]),
                    float(fused[row, second]),
                    gold == first,
                    gold in (first, second),
                    gold < 0,
                )
            )
        return out

    # Folds are independent: with a pool they train side by side (results keep fold order).
    runs = pool.map(run_fold, range(cal.folds)) if pool else map(run_fold, range(cal.folds))
    found = [row for run in runs for row in run]
    top1 = [r[0] for r in found]
    top2 = [r[1] for r in found]
    right1 = [r[2] for r in found]
    right2 = [r[3] for r in found]
    oos = [r[4] for r in found]

    is_oos = np.array(oos, dtype=bool)
    n_in = int((~is_oos).sum())
    n_out = int(is_oos.sum())
    if n_in < cal.min_questions or n_out == 0:
        return fallback_thresholds(scoring)
    weights = np.where(
        is_oos, cal.out_of_scope_share / n_out, (1 - cal.out_of_scope_share) / n_in
    ).astype(np.float64)
    answer = pick_threshold(
        np.array(top1), np.array(right1, dtype=bool), weights, cal.target_wrong_rate
    )
    clarify = pick_threshold(
        np.array(top2), np.array(right2, dtype=bool), weights, cal.target_wrong_rate
    )
    answer_t = answer if answer is not None else float(max(top1)) + 1e-6
    clarify_t = clarify if clarify is not None else answer_t
    return Thresholds(answer=answer_t, clarify=min(clarify_t, answer_t), calibrated=True)
