from __future__ import annotations

import numpy as np

from knowledge_base.calibration import (
    CalibrationSettings,
    calibrate,
    fallback_thresholds,
    pick_threshold,
)
from knowledge_base.encoder import HashingEncoder
from knowledge_base.matcher import Matcher, Outcome
from knowledge_base.scoring import ScoringSettings
from tests.knowledge_base.conftest import SHOP_KB, entry


def test_pick_threshold_lowest_cut_within_target() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, False])
    weights = np.ones(5)
    assert pick_threshold(scores, correct, weights, target=0.0) == 0.7
    # One wrong answer among four answered is 25 %.
    assert pick_threshold(scores, correct, weights, target=0.25) == 0.6
    assert pick_threshold(scores, ~correct, weights, target=0.1) is None


def test_pick_threshold_never_splits_ties() -> None:
    scores = np.array([0.9, 0.5, 0.5])
    correct = np.array([True, True, False])
    assert pick_threshold(scores, correct, np.ones(3), target=0.1) == 0.9


def test_weights_move_the_threshold() -> None:
    scores = np.array([0.9, 0.8, 0.7])
    correct = np.array([True, False, True])
    light_wrong = np.array([1.0, 0.01, 1.0])
    assert pick_threshold(scores, correct, np.ones(3), target=0.1) == 0.9
    assert pick_threshold(scores, correct, light_wrong, target=0.1) == 0.7


def _prepared(encoder: HashingEncoder) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    texts = [t for e in SHOP_KB for t in e.phrasings]
    labels = np.array([i for i, e in enumerate(SHOP_KB) for _ in e.phrasings], dtype=np.int64)
    return texts, labels, encoder.encode(texts), len(SHOP_KB)


def test_calibration_is_reproducible_and_ordered(encoder: HashingEncoder) -> None:
    texts, labels, vectors, n = _prepared(encoder)
    settings = ScoringSettings()
    cal = CalibrationSettings(min_questions=5)
    first = calibrate(texts, labels, vectors, n, settings, cal)
    second = calibrate(texts, labels, vectors, n, settings, cal)
    assert first == second
    assert first.calibrated
    assert first.clarify <= first.answer


def test_stricter_target_raises_the_threshold(encoder: HashingEncoder) -> None:
    texts, labels, vectors, n = _prepared(encoder)
    settings = ScoringSettings()
    loose = calibrate(
        texts,
        labels,
        vectors,
        n,
        settings,
        CalibrationSettings(min_questions=5, target_wrong_rate=0.5),
    )
    strict = calibrate(
        texts,
        labels,
        vectors,
        n,
        settings,
        CalibrationSettings(min_questions=5, target_wrong_rate=0.0),
    )
    assert strict.answer >= loose.answer


def test_tiny_kb_falls_back_to_fixed_thresholds(encoder: HashingEncoder) -> None:
    tiny = (entry("a", "refund please"), entry("b", "track parcel"))
    matcher = Matcher.build(tiny, encoder)
    assert matcher.thresholds == fallback_thresholds(ScoringSettings())
    assert not matcher.thresholds.calibrated


def test_calibrated_matcher_answers_paraphrases_and_declines_unrelated(
    encoder: HashingEncoder,
) -> None:
    matcher = Matcher.build(SHOP_KB, encoder, calibration=CalibrationSettings(min_questions=5))
    assert matcher.thresholds.calibrated
    answered = matcher.match("I forgot my password, reset it")
    assert answered.outcome is Outcome.ANSWER
    assert matcher.entries[answered.candidates[0][0]].id == "password"
    declined = matcher.match("what is the capital of mongolia")
    assert declined.outcome is Outcome.DECLINE
