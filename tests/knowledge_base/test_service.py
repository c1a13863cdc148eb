from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from knowledge_base.base import Answer, Clarify, Decline, KnowledgeBase
from knowledge_base.calibration import CalibrationSettings
from knowledge_base.encoder import HashingEncoder, Matrix
from knowledge_base.matcher import Matcher
from knowledge_base.service import MatcherKB
from tests.knowledge_base.conftest import SHOP_KB, entry


class GatedEncoder(HashingEncoder):
    """Blocks encoding of any batch containing ``gate_text`` until released."""

    def __init__(self, gate_text: str) -> None:
        super().__init__(dim=512)
        self.gate_text = gate_text
        self.release = threading.Event()

    def encode(self, texts: Sequence[str]) -> Matrix:
        if self.gate_text in texts:
            self.release.wait(timeout=10)
        return super().encode(texts)


def _kb(encoder: HashingEncoder) -> MatcherKB:
    calibration = CalibrationSettings(min_questions=5)
    return MatcherKB(Matcher.build(SHOP_KB, encoder, calibration=calibration), encoder=encoder)


async def test_answers_in_the_asked_locale(encoder: HashingEncoder) -> None:
    kb = _kb(encoder)
    assert isinstance(kb, KnowledgeBase)
    en = await kb.match("I forgot my password", locale="en")
    zh = await kb.match("I forgot my password", locale="zh-CN")
    assert isinstance(en, Answer)
    assert isinstance(zh, Answer)
    assert (en.entry_id, en.answer) == ("password", "Use Forgot password.")
    assert zh.answer == "点击忘记密码。"
    kb.close()


async def test_escalation_words_are_declined(encoder: HashingEncoder) -> None:
    kb = _kb(encoder)
    for text in ["转人工", "I want to file a complaint about my refund"]:
        assert await kb.match(text, locale="en") == Decline()
    kb.close()


async def test_unrelated_question_declines_with_top_candidate(encoder: HashingEncoder) -> None:
    kb = _kb(encoder)
    verdict = await kb.match("what is the capital of mongolia")
    assert isinstance(verdict, Decline | Clarify)
    kb.close()


async def test_rebuild_swaps_index_without_pausing_answers() -> None:
    new_text = "gift wrapping available"
    encoder = GatedEncoder(gate_text=new_text)
    kb = _kb(encoder)
    rebuild = asyncio.create_task(
        kb.rebuild([*SHOP_KB, entry("gift", "gift wrap", new_text, en="Yes, 5 yuan.")])
    )
    await asyncio.sleep(0.05)
    # The build is stuck in the encoder; questions are still answered from the old index.
    during = await asyncio.wait_for(kb.match("reset password", locale="en"), timeout=5)
    assert isinstance(during, Answer)
    assert {e.id for e in kb.entries} == {e.id for e in SHOP_KB}
    encoder.release.set()
    await asyncio.wait_for(rebuild, timeout=30)
    assert "gift" in {e.id for e in kb.entries}
    after = await kb.match("gift wrapping available", locale="en")
    assert isinstance(after, Answer | Clarify)
    kb.close()


async def test_build_classmethod_runs_off_the_loop(encoder: HashingEncoder) -> None:
    kb = await MatcherKB.build(SHOP_KB, encoder=encoder)
    assert len(kb.entries) == len(SHOP_KB)
    kb.close()
