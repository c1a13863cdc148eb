from __future__ import annotations

from collections.abc import Sequence

from knowledge_base.base import Answer, Decline, KnowledgeBase, NeverMatches
from knowledge_base.encoder import HashingEncoder
from knowledge_base.entry import KBEntry
from knowledge_base.service import MatcherKB
from knowledge_base.swappable import SwappableKB
from tests.knowledge_base.conftest import SHOP_KB


class Stored:
    """Stands in for the store: what ``load`` returns, and how often it was read."""

    def __init__(self, entries: Sequence[KBEntry]) -> None:
        self.entries = tuple(entries)
        self.loads = 0
        self.fail = False

    async def load(self) -> Sequence[KBEntry]:
        self.loads += 1
        if self.fail:
            raise OSError("store down")
        return self.entries


async def test_first_entries_build_a_matcher_and_none_left_declines_everything(
    encoder: HashingEncoder,
) -> None:
    stored = Stored(SHOP_KB)
    kb = SwappableKB(NeverMatches(), stored.load, encoder=encoder)
    assert isinstance(kb, KnowledgeBase)
    assert await kb.match("I forgot my password") == Decline()
    kb.refresh()
    await kb.settled()
    assert isinstance(kb.current, MatcherKB)
    verdict = await kb.match("I forgot my password", locale="en")
    assert isinstance(verdict, Answer)
    assert verdict.entry_id == "password"

    stored.entries = ()
    kb.refresh()
    await kb.settled()
    assert isinstance(kb.current, NeverMatches)
    await kb.close()


async def test_refreshes_during_a_build_coalesce_and_a_failure_keeps_the_old_index(
    encoder: HashingEncoder,
) -> None:
    stored = Stored(SHOP_KB)
    kb = SwappableKB(NeverMatches(), stored.load, encoder=encoder)
    for _ in range(5):
        kb.refresh()
    await kb.settled()
    assert stored.loads <= 2  # one build, plus at most one for the edits made meanwhile
    built = kb.current
    stored.fail = True
    kb.refresh()
    await kb.settled()
    assert kb.current is built
    await kb.close()
