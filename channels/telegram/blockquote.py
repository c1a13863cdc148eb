"""Quoting a customer's message as text: a Telegram blockquote over its first words.

A reply that answers a message Telegram cannot point at (it came by email or web chat, or in
the contact's other Telegram chat, whose message ids are not this chat's) starts with the words
it answers, shown as a quote (https://core.telegram.org/bots/api#messageentity, type
``blockquote``). An entity, not ``parse_mode``: nothing in the customer's or the agent's words
is read as markup, and a ``<`` in either cannot make Telegram refuse the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import MessageEntity

from channels.telegram.split import utf16_units

QUOTED_CHARS = 200
"""How much of the message answered the quote shows: enough to recognise it, not to repeat a
long mail (the customer has it)."""

_WORD_BACK = 40
"""A cut looks this many characters back for a space, so that it falls between words."""


@dataclass(frozen=True, slots=True)
class Blockquote:
    """The quote that goes before a message's own text (or as a file's caption)."""

    words: str
    """The quoted words, shortened to :data:`QUOTED_CHARS` with an ellipsis."""

    @property
    def lead(self) -> str:
        """What goes before the reply's text: the quote, then a line break."""
        return f"{self.words}\n"

    @property
    def entities(self) -> tuple[MessageEntity, ...]:
        # Offsets and lengths count UTF-16 code units (an emoji outside the BMP counts two).
        return (MessageEntity(MessageEntity.BLOCKQUOTE, offset=0, length=utf16_units(self.words)),)


def blockquote(text: str) -> Blockquote | None:
    """``text`` as a quote, its first :data:`QUOTED_CHARS` characters (cut between words where
    one ends near there) and an ellipsis when longer; None when it has no words.

    Stripped: Telegram trims a message's leading whitespace, which would move the quote's
    entity off its words."""
    words = text.strip()
    if not words:
        return None
    if len(words) > QUOTED_CHARS:
        cut = words[:QUOTED_CHARS]
        space = max(cut.rfind(" "), cut.rfind("\n"))
        if space >= QUOTED_CHARS - _WORD_BACK:
            cut = cut[:space]
        words = f"{cut.rstrip()}…"
    return Blockquote(words)
