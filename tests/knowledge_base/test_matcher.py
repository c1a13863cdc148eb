from __future__ import annotations

from knowledge_base.calibration import Thresholds
from knowledge_base.encoder import HashingEncoder
from knowledge_base.matcher import Matcher, Outcome
from tests.knowledge_base.conftest import SHOP_KB, entry


def test_best_entry_first_for_english_and_chinese(encoder: HashingEncoder) -> None:
    matcher = Matcher.build(SHOP_KB, encoder, thresholds=Thresholds(answer=0.0, clarify=0.0))
    results = matcher.match_many(["where is my package", "我要开发票", "优惠券无效"])
    ids = [matcher.entries[r.candidates[0][0]].id for r in results]
    assert ids == ["track", "invoice", "coupon"]
    assert all(r.outcome is Outcome.ANSWER for r in results)


def test_two_close_entries_ask_to_clarify(encoder: HashingEncoder) -> None:
    kb = (
        entry("return-fee", "return shipping fee", "who pays return shipping fee"),
        entry("refund-fee", "refund shipping fee", "is the shipping fee refunded"),
        entry("hours", "opening hours", "when are you open"),
    )
    # Thresholds fixed so the test is about the decision rule, not about calibration.
    matcher = Matcher.build(kb, encoder, thresholds=Thresholds(answer=10.0, clarify=0.3))
    result = matcher.match("shipping fee")
    assert result.outcome is Outcome.CLARIFY
    assert {matcher.entries[i].id for i, _ in result.candidates} == {"return-fee", "refund-fee"}
    first, second = result.candidates
    assert first[1] >= second[1]


def test_low_scores_decline_with_the_best_entry_for_logs(encoder: HashingEncoder) -> None:
    matcher = Matcher.build(SHOP_KB, encoder, thresholds=Thresholds(answer=10.0, clarify=10.0))
    result = matcher.match("track my parcel")
    assert result.outcome is Outcome.DECLINE
    assert matcher.entries[result.candidates[0][0]].id == "track"


def test_empty_kb_declines_everything(encoder: HashingEncoder) -> None:
    matcher = Matcher.build([entry("blank", " ")], encoder)
    assert matcher.entries == ()
    assert matcher.match("hello").outcome is Outcome.DECLINE
    assert matcher.match("hello").candidates == ()


def test_single_entry_kb(encoder: HashingEncoder) -> None:
    matcher = Matcher.build(
        [entry("only", "reset password", "forgot password")],
        encoder,
        thresholds=Thresholds(answer=0.5, clarify=0.5),
    )
    assert matcher.match("forgot password").outcome is Outcome.ANSWER


def test_emoji_and_empty_questions_do_not_crash(encoder: HashingEncoder) -> None:
    matcher = Matcher.build(SHOP_KB, encoder)
    for text in ["", "😀😀", "？？？"]:
        assert matcher.match(text).outcome is Outcome.DECLINE
