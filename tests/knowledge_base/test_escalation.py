from __future__ import annotations

import pytest

from knowledge_base.escalation import EscalationIntent, escalation_intent

HUMAN = EscalationIntent.HUMAN
COMPLAINT = EscalationIntent.COMPLAINT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("人工", HUMAN),
        ("转人工", HUMAN),
        ("请帮我转人工客服", HUMAN),
        ("human", HUMAN),
        ("HUMAN please", HUMAN),
        ("agent", HUMAN),
        ("ａｇｅｎｔ！", HUMAN),  # full-width
        ("Can I talk to a real person?", HUMAN),
        ("投诉", COMPLAINT),
        ("我要投诉你们的快递", COMPLAINT),
        ("complaint", COMPLAINT),
        ("I want to complain about the delivery", COMPLAINT),
        ("我要投诉，转人工", COMPLAINT),  # a complaint wins over a plain hand-over
        ("where is my order", None),
        ("我的快递到哪了", None),
        ("人工智能是什么", None),  # "artificial intelligence", not a person
        ("agents", HUMAN),
        ("", None),
    ],
)
def test_escalation_intent(text: str, expected: EscalationIntent | None) -> None:
    assert escalation_intent(text) is expected
