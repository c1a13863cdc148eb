"""Texts of the notices the gateway sends, per locale (zh-CN first: the shop's default)."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LOCALE = "zh-CN"

TEMPLATES: Mapping[str, Mapping[str, str]] = {
    "ticket_received": {
        "zh-CN": "您好，我们已收到您的问题，工单号 {number}。我们将在 {promise} 内回复您。",
        "en": (
            "Hello, we have received your request, ticket {number}. We will reply within {promise}."
        ),
    },
    "escalated": {
        "zh-CN": "已为您转接人工客服，请稍候（工单号 {number}）。",
        "en": "A member of our team will take over shortly (ticket {number}).",
    },
}

PROMISE: Mapping[str, Mapping[str, str]] = {
    "normal": {"zh-CN": "24 小时", "en": "24 hours"},
    "urgent": {"zh-CN": "4 小时", "en": "4 hours"},
    "critical": {"zh-CN": "2 小时", "en": "2 hours"},
}


def pick_locale(locale: str | None) -> str:
    """``en``, ``en-US`` -> ``en``; anything Chinese or unknown -> ``zh-CN``."""
    if locale and locale.lower().startswith("en"):
        return "en"
    return DEFAULT_LOCALE


def render(template: str, locale: str | None, **values: str) -> str:
    """The text of ``template`` in the customer's locale, with ``values`` filled in."""
    texts = TEMPLATES[template]
    return texts[pick_locale(locale)].format(**values)


def promise(priority: str, locale: str | None) -> str:
    return PROMISE[priority][pick_locale(locale)]
