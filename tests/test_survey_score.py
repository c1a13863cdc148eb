"""A reply that is just a score: "3", "３ ", "5。" rate the ticket; anything longer does not."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.survey_replies import _SCORE, survey_score


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("3", 3),
        (" ３ ", 3),
        ("5。", 5),
        ("4 !", 4),
        ("\n3\n\n", 3),
        ("2" + " " * 50 + ".", 2),
        ("\u30001\u3000", 1),
        ("⑤", 5),
        ("⒌", 5),
        ("６", None),
        ("33", None),
        ("3!!", None),
        ("3 stars", None),
        ("订单 3 什么时候发货？", None),
        ("", None),
    ],
)
def test_a_score_is_one_digit_and_at_most_a_stop(text: str, score: int | None) -> None:
    assert survey_score(text) == score


# Digits, stops, and the characters where a shortcut could go wrong: whitespace of every kind,
# ones that are not whitespace but look it, compatibility forms that normalise to a digit.
_ALPHABET = "35６３⑤⒌.!。！．a \t\n\u3000\u00a0\u2003\u1680\u2028\x85\x1c\u200b\ufeff\u0301\u00af"


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=8))
def test_the_quick_refusal_agrees_with_normalising_everything(text: str) -> None:
    match = _SCORE.fullmatch(unicodedata.normalize("NFKC", text))
    assert survey_score(text) == (int(match.group(1)) if match else None)
