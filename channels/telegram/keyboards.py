"""Our inline keyboards and the ``callback_data`` their buttons send back.

``callback_data`` is at most 64 bytes (https://core.telegram.org/bots/api#inlinekeyboardbutton),
so it is a short code plus the ticket number: ``h:<ticket>:y|n`` ("did this help?"),
``r:<ticket>:<1-5>`` (survey stars).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from channels.telegram.texts import text


class FeedbackKind(StrEnum):
    HELPFUL = "helpful"
    RATING = "rating"


@dataclass(frozen=True, slots=True)
class Feedback:
    """A button press: ``value`` is 1/0 for helpful yes/no, or 1-5 stars."""

    kind: FeedbackKind
    ticket_number: str
    value: int


def helpful_keyboard(ticket_number: str, locale: str | None) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(text("yes", locale), callback_data=f"h:{ticket_number}:y"),
                InlineKeyboardButton(text("no", locale), callback_data=f"h:{ticket_number}:n"),
            ]
        ]
    )


def rating_keyboard(ticket_number: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("★" * stars, callback_data=f"r:{ticket_number}:{stars}")
                for stars in range(1, 6)
            ]
        ]
    )


def parse_callback(data: str) -> Feedback | None:
    """What a button of ours means; ``None`` for data we did not make."""
    parts = data.split(":")
    if len(parts) != 3 or not parts[1]:
        return None
    code, number, value = parts
    if code == "h" and value in ("y", "n"):
        return Feedback(FeedbackKind.HELPFUL, number, 1 if value == "y" else 0)
    if code == "r" and value in {"1", "2", "3", "4", "5"}:
        return Feedback(FeedbackKind.RATING, number, int(value))
    return None
