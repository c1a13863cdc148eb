"""The knowledge base the gateway uses: a :class:`Matcher` behind an async, swappable facade."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from knowledge_base.base import Answer, Candidate, Clarify, Decline, Verdict
from knowledge_base.encoder import CachedEncoder, E5Encoder, TextEncoder
from knowledge_base.entry import KBEntry
from knowledge_base.escalation import escalation_intent
from knowledge_base.matcher import Matcher, MatchResult, Outcome

log = logging.getLogger(__name__)


class MatcherKB:
    """A :class:`~knowledge_base.base.KnowledgeBase` over a list of entries.

    Matching and index builds run in an executor, never on the event loop. :meth:`rebuild`
    builds the new index in the background and swaps it in one assignment, so questions keep
    being answered from the old index meanwhile.

    Escalation words (see :func:`~knowledge_base.escalation.escalation_intent`) are the
    router's job; this class only declines them, so a "转人工" never gets an FAQ answer.

    Args:
        matcher: A built matcher (see :meth:`build` for the usual way to get one).
        encoder: Used by :meth:`rebuild`; keep the same one so cached vectors are reused.
        executor: Where matching and builds run; a private single thread by default, so one
            slow build cannot take every worker and questions are batched one at a time.
    """

    def __init__(
        self,
        matcher: Matcher,
        *,
        encoder: TextEncoder,
        executor: Executor | None = None,
    ) -> None:
        self._matcher = matcher
        self._encoder = encoder
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb")
        self._build_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-build")
        self._rebuild_lock = asyncio.Lock()

    @classmethod
    async def build(
        cls,
        entries: Sequence[KBEntry],
        *,
        encoder: TextEncoder | None = None,
        executor: Executor | None = None,
    ) -> MatcherKB:
        """Build the index (in a worker thread) and return the knowledge base.

        Args:
            entries: The knowledge base.
            encoder: Sentence encoder; the bundled e5 model (with an in-memory cache) by default.
            executor: See the class docstring.
        """
        enc = encoder or CachedEncoder(E5Encoder())
        loop = asyncio.get_running_loop()
        matcher = await loop.run_in_executor(None, Matcher.build, tuple(entries), enc)
        return cls(matcher, encoder=enc, executor=executor)

    @property
    def entries(self) -> tuple[KBEntry, ...]:
        """The entries currently answered from."""
        return self._matcher.entries

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        """Match one customer question; see :class:`~knowledge_base.base.KnowledgeBase`."""
        if escalation_intent(text) is not None:
            return Decline()
        matcher = self._matcher  # this request keeps the index it started with
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, matcher.match, text)
        return to_verdict(matcher, result, locale=locale)

    async def rebuild(self, entries: Sequence[KBEntry]) -> None:
        """Build an index for ``entries`` in the background, then swap it in atomically."""
        async with self._rebuild_lock:
            loop = asyncio.get_running_loop()
            fresh = await loop.run_in_executor(
                self._build_executor, Matcher.build, tuple(entries), self._encoder
            )
            self._matcher = fresh
            log.info("knowledge base rebuilt: %d entries", len(fresh.entries))

    def close(self) -> None:
        """Stop the worker threads (pending work finishes first)."""
        self._build_executor.shutdown(wait=True)
        if isinstance(self._executor, ThreadPoolExecutor):
            self._executor.shutdown(wait=True)


def to_verdict(matcher: Matcher, result: MatchResult, *, locale: str | None) -> Verdict:
    """Turn a matcher result into the router's verdict, with the answer in ``locale``."""
    candidates = tuple(
        Candidate(entry_id=matcher.entries[i].id, title=matcher.entries[i].title, score=s)
        for i, s in result.candidates
    )
    if result.outcome is Outcome.ANSWER:
        entry = matcher.entries[result.candidates[0][0]]
        return Answer(
            entry_id=entry.id,
            title=entry.title,
            answer=entry.answer_for(locale),
            score=result.candidates[0][1],
        )
    if result.outcome is Outcome.CLARIFY:
        return Clarify(candidates=candidates)
    return Decline(top=candidates[0] if candidates else None)
