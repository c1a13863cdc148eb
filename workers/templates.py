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
    "assigned": {
        "zh-CN": "您的工单 {number} 已分配给客服 {agent}，将由其为您处理。",
        "en": "Ticket {number} is now with {agent}, who will take care of it.",
    },
    "in_progress": {
        "zh-CN": "客服已确认您的工单 {number}，正在处理中。",
        "en": "We have picked up ticket {number} and are working on it.",
    },
    "agent_joined": {
        "zh-CN": "客服 {agent} 已接入，将为您处理（工单号 {number}）。",
        "en": "{agent} has joined and will take care of your request (ticket {number}).",
    },
    "waiting_customer": {
        "zh-CN": "处理工单 {number} 还需要您补充一些信息，请直接回复本消息。",
        "en": "We need a little more information to continue with ticket {number}: just reply.",
    },
    "progress": {
        "zh-CN": "工单 {number} 进展：{text}",
        "en": "Update on ticket {number}: {text}",
    },
    "resolved": {
        "zh-CN": (
            "工单 {number} 已处理完毕，请确认问题是否已解决：已解决无需回复；"
            "如仍有问题，请直接回复，我们会继续跟进。"
        ),
        "en": (
            "Ticket {number} is resolved: please confirm. If all is well there is nothing to "
            "do; if not, just reply and we will pick it up again."
        ),
    },
    "survey": {
        "zh-CN": "请为本次服务（工单 {number}）打分：回复 1-5（5 分最满意）。{link}",
        "en": (
            "How did we do with ticket {number}? Reply with a score from 1 to 5 (5 is best).{link}"
        ),
    },
}

SURVEY_LINK: Mapping[str, str] = {
    "zh-CN": "\n也可以点击评价：{url}",
    "en": "\nOr rate us here: {url}",
}

PROMISE: Mapping[str, Mapping[str, str]] = {
    "normal": {"zh-CN": "24 小时", "en": "24 hours"},
    "urgent": {"zh-CN": "4 小时", "en": "4 hours"},
    "critical": {"zh-CN": "2 小时", "en": "2 hours"},
}


def pick_locale(locale: str | None) -> str:
    """Chinese (``zh``, ``zh-hans``, ``zh-TW``) or unknown -> ``zh-CN``, the shop's language;
    any other known language (``en-US``, ``ru``, ``de``) -> ``en``: a customer whose app or
    browser speaks Russian more likely reads English than Chinese."""
    if not locale or not locale.strip() or locale.strip().lower().startswith("zh"):
        return DEFAULT_LOCALE
    return "en"


def render(template: str, locale: str | None, **values: str) -> str:
    """The text of ``template`` in the customer's locale, with ``values`` filled in."""
    texts = TEMPLATES[template]
    return texts[pick_locale(locale)].format(**values)


def survey_link(url: str | None, locale: str | None) -> str:
    """The line that offers the survey page, or nothing without a public URL."""
    return SURVEY_LINK[pick_locale(locale)].format(url=url) if url else ""


def promise(priority: str, locale: str | None) -> str:
    return PROMISE[priority][pick_locale(locale)]
