"""Our inline keyboards and the ``callback_data`` their buttons send back.

``callback_data`` is at most 64 bytes (https://core.telegram.org/bots/api#inlinekeyboardbutton),
so it is a short code and an id: ``a:<bot message id>:y|n`` ("did this help?" on that answer),
``k:<bot message id>:<n>`` (the n-th question the bot asked "which one?" about),
``r:<ticket>:<1-5>`` (survey stars). Keyboards sent before ``a:`` name the ticket,
``h:<ticket>:y|n``, and still count, for the ticket's latest answer: a chat keeps its
keyboards for good. Naming the ticket sent a press under an earlier answer to the latest one
(the agent read the wrong question and rejected answer, and the wrong entry was counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from channels.telegram.texts import text


class FeedbackKind(StrEnum):
    HELPFUL = "helpful"
    RATING = "rating"
    CHOICE = "choice"


@dataclass(frozen=True, slots=True)
class Feedback:
    """A button press: ``value`` is 1/0 for helpful yes/no, 1-5 stars, or the index of the
    question chosen."""

    kind: FeedbackKind
    value: int
    ticket_number: str | None = None
    answer_id: int | None = None
    """The bot message pressed under (``a:``); None for a ticket's keyboard (``h:``, ``r:``)."""


def helpful_keyboard(answer_id: int, locale: str | None) -> InlineKeyboardMarkup:
    """The "did this help?" keyboard under the bot message ``answer_id``."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(text("yes", locale), callback_data=f"a:{answer_id}:y"),
                InlineKeyboardButton(text("no", locale), callback_data=f"a:{answer_id}:n"),
            ]
        ]
    )


CHOICE_LABEL_CHARS = 60
"""Longer questions are cut on their button (Telegram's apps show a line of a button's text)."""


def choices_keyboard(answer_id: int, titles: list[str]) -> InlineKeyboardMarkup:
    """One button per question the bot asks "which one?" about, under its message
    ``answer_id``."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(_label(title), callback_data=f"k:{answer_id}:{index}")]
            for index, title in enumerate(titles)
        ]
    )


def _label(title: str) -> str:
    return title if len(title) <= CHOICE_LABEL_CHARS else title[: CHOICE_LABEL_CHARS - 1] + "…"


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
    code, key, value = parts
    answer_id = _message_id(key)
    if code == "a" and value in ("y", "n") and answer_id is not None:
        return Feedback(FeedbackKind.HELPFUL, 1 if value == "y" else 0, answer_id=answer_id)
    if code == "k" and answer_id is not None and value.isascii() and value.isdigit():
        return Feedback(FeedbackKind.CHOICE, int(value), answer_id=answer_id)
    if code == "h" and value in ("y", "n"):
        return Feedback(FeedbackKind.HELPFUL, 1 if value == "y" else 0, ticket_number=key)
    if code == "r" and value in {"1", "2", "3", "4", "5"}:
        return Feedback(FeedbackKind.RATING, int(value), ticket_number=key)
    return None


_MAX_MESSAGE_ID = 2**31 - 1
"""Message ids are 32-bit integer keys: a larger one is none of ours, and PostgreSQL refuses to
look it up (asyncpg's ``DataError``) rather than finding nothing."""


def _message_id(key: str) -> int | None:
    if not (key.isascii() and key.isdigit()) or len(key) > len(str(_MAX_MESSAGE_ID)):
        return None
    number = int(key)
    return number if number <= _MAX_MESSAGE_ID else None
