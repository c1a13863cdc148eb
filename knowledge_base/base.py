"""The contract between the gateway's router and any knowledge base.

The router asks ``await kb.match(text, locale=...)`` and gets one of three verdicts:

- :class:`Answer`: confident; the bot answers at once.
- :class:`Clarify`: two or more close candidates; the bot asks which one is meant.
- :class:`Decline`: not confident; the conversation goes to a person.

Implementations must not block the event loop: heavy work runs in an executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Candidate:
    """One knowledge-base entry as a possible match."""

    entry_id: str
    title: str
    score: float


@dataclass(frozen=True, slots=True)
class Answer:
    """A confident match: ``answer`` is the text to send, in the asked locale when there is one."""

    entry_id: str
    title: str
    answer: str
    score: float


@dataclass(frozen=True, slots=True)
class Clarify:
    """Close candidates (best first); the customer is asked to choose."""

    candidates: tuple[Candidate, ...]


@dataclass(frozen=True, slots=True)
class Decline:
    """No confident match; ``top`` is the best entry anyway (for logs and the agent's view)."""

    top: Candidate | None = None


Verdict = Answer | Clarify | Decline


@runtime_checkable
class KnowledgeBase(Protocol):
    """What the router needs from a knowledge base."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        """Match one customer question."""
        ...


class NeverMatches:
    """A knowledge base that declines everything: every conversation goes to a person."""

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        return Decline()
