"""A knowledge-base entry: one FAQ or intent with its phrasings and localised answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_LOCALES = ("zh-CN", "en")


def _freeze(answers: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(answers))


@dataclass(frozen=True, slots=True)
class KBEntry:
    """One knowledge-base entry.

    Attributes:
        id: Stable identifier, unique within the knowledge base.
        title: The canonical question; shown as a choice when the bot asks to clarify.
        examples: Alternative phrasings customers use (any language).
        answers: Answer text by locale (``"zh-CN"``, ``"en"``, ...).
        category: Optional grouping, e.g. ``"delivery"``.
    """

    id: str
    title: str
    examples: tuple[str, ...] = ()
    answers: Mapping[str, str] = field(default_factory=lambda: _freeze({}))
    category: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a knowledge-base entry needs an id")
        # A plain dict passed by a caller must not stay mutable behind a frozen entry.
        if not isinstance(self.answers, MappingProxyType):
            object.__setattr__(self, "answers", _freeze(self.answers))
        object.__setattr__(self, "examples", tuple(self.examples))

    @property
    def phrasings(self) -> tuple[str, ...]:
        """The title followed by the examples, without blanks or duplicates."""
        seen: dict[str, None] = {}
        for text in (self.title, *self.examples):
            if text.strip():
                seen.setdefault(text.strip(), None)
        return tuple(seen)

    def _in_language_of(self, locale: str) -> str | None:
        """The answer in ``locale``, else in its language ("en-US" where "en" is asked)."""
        if locale in self.answers:
            return self.answers[locale]
        language = locale.split("-")[0].lower()
        for key, text in self.answers.items():
            if key.split("-")[0].lower() == language:
                return text
        return None

    def answer_for(self, locale: str | None) -> str:
        """The answer in ``locale``, else in the same language, else English or Chinese
        (English first for a language that is neither), else in any locale we have.

        Args:
            locale: A BCP 47 tag such as ``"zh-CN"`` or ``"en-GB"``; ``None`` means no preference.

        Returns:
            The answer text, or ``""`` when the entry has none.
        """
        if not self.answers:
            return ""
        # Another language gets English before Chinese, as the bot's own texts do
        # (``workers.templates.pick_locale``): a Brazilian's app more likely reads English.
        tag = (locale or "").strip().lower()
        defaults = (
            reversed(DEFAULT_LOCALES) if tag and not tag.startswith("zh") else DEFAULT_LOCALES
        )
        for wanted in (locale, *defaults):
            found = self._in_language_of(wanted) if wanted else None
            if found is not None:
                return found
        return next(iter(self.answers.values()))
