"""A knowledge base the app can replace while it runs: edits take effect without a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from knowledge_base.base import KnowledgeBase, NeverMatches, Verdict
from knowledge_base.encoder import CachedEncoder, E5Encoder, TextEncoder
from knowledge_base.entry import KBEntry
from knowledge_base.service import MatcherKB

log = logging.getLogger(__name__)

LoadEntries = Callable[[], Awaitable[Sequence[KBEntry]]]


class SwappableKB:
    """Holds the knowledge base in use and rebuilds it in the background after edits.

    The router keeps this object for the life of the app; :meth:`refresh` reads the entries
    again (after the edit committed) and either rebuilds the current :class:`MatcherKB`, builds
    the first one (the app started with an empty knowledge base), or drops back to
    :class:`NeverMatches` when no entry is left. Questions keep being answered from the old
    index meanwhile, and refreshes asked for during a build coalesce into one more build.

    Args:
        current: The knowledge base to answer from until the first refresh.
        load: Reads the enabled entries (from the store).
        encoder: The sentence encoder for new indexes; the bundled e5 model by default. A
            :class:`MatcherKB` passed as ``current`` keeps its own encoder.
    """

    def __init__(
        self,
        current: KnowledgeBase,
        load: LoadEntries,
        *,
        encoder: TextEncoder | None = None,
    ) -> None:
        self.current = current
        self.encoder = encoder
        self._load = load
        self._dirty = False
        self._worker: asyncio.Task[None] | None = None

    async def match(self, text: str, *, locale: str | None = None) -> Verdict:
        """Match with the knowledge base in use now; see :class:`KnowledgeBase`."""
        return await self.current.match(text, locale=locale)

    def refresh(self) -> None:
        """Rebuild from the stored entries in the background (call after the write commits)."""
        self._dirty = True
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="kb-rebuild")

    async def settled(self) -> None:
        """Wait until no rebuild is pending (for tests and shutdown)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self._apply(tuple(await self._load()))
            except Exception:  # a failed build keeps the old index answering
                log.exception("knowledge base rebuild failed; the previous index stays in use")

    async def _apply(self, entries: Sequence[KBEntry]) -> None:
        current = self.current
        if not entries:
            self.current = NeverMatches()
            if isinstance(current, MatcherKB):
                # close() joins its threads: never on the event loop.
                await asyncio.get_running_loop().run_in_executor(None, current.close)
            log.info("knowledge base emptied: every question goes to a person")
        elif isinstance(current, MatcherKB):
            await current.rebuild(entries)
        else:
            if self.encoder is None:
                self.encoder = CachedEncoder(E5Encoder())
            self.current = await MatcherKB.build(entries, encoder=self.encoder)
            log.info("knowledge base built: %d entries", len(entries))

    async def close(self) -> None:
        """Cancel a pending rebuild, then stop the matcher's threads."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if isinstance(self.current, MatcherKB):
            await asyncio.get_running_loop().run_in_executor(None, self.current.close)
