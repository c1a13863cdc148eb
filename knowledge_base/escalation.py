"""Words that hand a conversation to a person at once, before any matching."""

from __future__ import annotations

import re
from enum import StrEnum

from knowledge_base.text_features import normalize_text, stem


class EscalationIntent(StrEnum):
    """Why the customer must be handed to a person."""

    HUMAN = "human"
    COMPLAINT = "complaint"


# Chinese has no word boundaries, so these are substrings of the normalised text.
_ZH_COMPLAINT = ("投诉", "举报", "差评")
_ZH_HUMAN = ("人工", "真人", "客服人员", "客服专员", "活人")
# Substrings that contain a human word but mean something else ("artificial intelligence").
_ZH_NOT_HUMAN = ("人工智能", "人工费")

# English words compare after stemming, so "complaints"/"complained" match "complaint"/"complain".
_EN_COMPLAINT = frozenset(stem(w) for w in ("complaint", "complain", "complained"))
_EN_HUMAN = frozenset(stem(w) for w in ("human", "agent", "representative", "operator"))
_EN_HUMAN_PHRASES = (
    re.compile(r"\b(real|live|actual) (person|people)\b"),
    re.compile(r"\b(talk|speak|chat) (to|with) (a |an )?(person|someone|somebody|staff)\b"),
)


def escalation_intent(text: str) -> EscalationIntent | None:
    """Whether ``text`` asks for a person or complains; a complaint wins when it does both.

    >>> escalation_intent("转人工")
    <EscalationIntent.HUMAN: 'human'>
    >>> escalation_intent("I want to file a complaint!")
    <EscalationIntent.COMPLAINT: 'complaint'>
    >>> escalation_intent("where is my order") is None
    True
    """
    norm = normalize_text(text)
    tokens = {stem(word) for word in norm.split() if word.isascii()}
    if tokens & _EN_COMPLAINT or any(word in norm for word in _ZH_COMPLAINT):
        return EscalationIntent.COMPLAINT
    zh = norm
    for phrase in _ZH_NOT_HUMAN:
        zh = zh.replace(phrase, " ")
    if (
        tokens & _EN_HUMAN
        or any(word in zh for word in _ZH_HUMAN)
        or any(p.search(norm) for p in _EN_HUMAN_PHRASES)
    ):
        return EscalationIntent.HUMAN
    return None
