from __future__ import annotations

import numpy as np

from knowledge_base.lexical import LexicalIndex

DOCS = ["how do I return my order", "where is my parcel", "我想退货", "发票怎么开", "return policy"]


def test_bm25_and_cosine_rank_the_matching_document_first() -> None:
    index = LexicalIndex(DOCS)
    scores = index.score("return the order")
    assert int(np.argmax(scores.bm25)) == 0
    assert int(np.argmax(scores.cosine)) == 0
    assert 0.0 < float(scores.bm25.max()) <= 1.0


def test_chinese_matches_through_character_ngrams() -> None:
    index = LexicalIndex(DOCS)
    # "退货" segmented differently in a longer sentence still shares its bigram.
    assert int(np.argmax(index.score("我要退货怎么操作").bm25)) == 2


def test_identical_text_scores_about_one() -> None:
    index = LexicalIndex(DOCS)
    assert float(index.score("where is my parcel").bm25[1]) > 0.9


def test_unknown_words_score_zero() -> None:
    index = LexicalIndex(DOCS)
    scores = index.score("zebra xylophone 😀")
    assert not scores.bm25.any()
    assert not scores.cosine.any()


def test_empty_index() -> None:
    assert len(LexicalIndex([]).score("anything").bm25) == 0
