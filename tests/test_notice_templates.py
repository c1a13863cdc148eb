"""Notice templates: every notice in both locales, and the locale a contact's language picks."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("template", "locale", "fragment"),
    [
        ("ticket_received", "en", "We will reply within 24 hours"),
        ("ticket_received", "zh-CN", "24 小时"),
        ("agent_joined", "en", "Ann has joined"),
        ("progress", "zh-CN", "进展：快递已发出"),
        ("resolved", "en", "is resolved"),
        ("survey", "en", "Or rate us here: https://help.shop.test/survey/"),
    ],
)
def test_every_notice_renders_in_both_locales(template: str, locale: str, fragment: str) -> None:
    from workers.templates import TEMPLATES, render, survey_link

    values = {
        "number": "G20261122001",
        "promise": "24 小时" if locale == "zh-CN" else "24 hours",
        "agent": "Ann",
        "text": "快递已发出",
        "link": survey_link("https://help.shop.test/survey/abc", locale),
    }
    assert fragment in render(template, locale, **values)
    assert set(TEMPLATES[template]) == {"zh-CN", "en"}


@pytest.mark.parametrize(
    ("locale", "picked"),
    [
        ("zh-hans", "zh-CN"),
        ("zh-TW", "zh-CN"),
        (None, "zh-CN"),  # unknown: the shop's language
        ("", "zh-CN"),
        ("en-US", "en"),
        ("ru", "en"),  # a Russian speaker more likely reads English than Chinese
        ("de-DE", "en"),
    ],
)
def test_chinese_or_unknown_is_chinese_any_other_language_english(
    locale: str | None, picked: str
) -> None:
    from workers.templates import pick_locale

    assert pick_locale(locale) == picked
