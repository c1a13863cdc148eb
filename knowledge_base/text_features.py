"""Text normalisation and lexical features for Chinese, English and mixed text.

Chinese runs are segmented with jieba (words) and also cut into character unigrams and
bigrams, so a matcher still works when jieba splits a rare term differently in the question
and in the knowledge base. Latin-script words are case-folded and lightly stemmed, and give
character trigrams so a typo costs one or two features instead of the whole word.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterator
from typing import Any

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_RUNS = re.compile(f"[{_CJK}]+|[^\\s{_CJK}]+")
_IS_CJK = re.compile(f"[{_CJK}]")

_jieba_lock = threading.Lock()
_jieba: Any = None


def _segmenter() -> Any:
    """jieba, imported and its dictionary loaded once (it takes about a second)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def normalize_text(text: str) -> str:
    """Fold width and case, and turn punctuation, symbols and emoji into single spaces.

    >>> normalize_text("ＡＢＣ１２３，退货？😀 OK")
    'abc123 退货 ok'
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = [ch if unicodedata.category(ch)[0] in "LN" else " " for ch in folded]
    return " ".join("".join(kept).split())


def stem(word: str) -> str:
    """A deliberately light English stemmer: plural and common verb endings only."""
    if len(word) <= 3 or not word.isascii():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    return word


def runs(text: str) -> Iterator[tuple[str, bool]]:
    """Yield ``(run, is_cjk)`` for the normalised text: CJK runs and other words."""
    for match in _RUNS.finditer(normalize_text(text)):
        run = match.group()
        yield run, bool(_IS_CJK.match(run))


def words(text: str) -> list[str]:
    """Word tokens: jieba words for Chinese runs, stemmed words otherwise.

    >>> words("How do I return 2 shoes? 我想退货")
    ['how', 'do', 'i', 'return', '2', 'shoe', '我', '想', '退货']
    """
    out: list[str] = []
    for run, is_cjk in runs(text):
        if is_cjk:
            out.extend(w for w in _segmenter().lcut(run, HMM=True) if w.strip())
        else:
            out.append(stem(run))
    return out


def features(text: str) -> list[str]:
    """All lexical features of ``text``, prefixed by kind, for the sparse index.

    ``w:`` words (see :func:`words`), ``c:`` Chinese character unigrams and bigrams,
    ``g:`` character trigrams of Latin-script words (with boundary marks).
    """
    out: list[str] = []
    for run, is_cjk in runs(text):
        if is_cjk:
            out.extend("w:" + w for w in _segmenter().lcut(run, HMM=True) if w.strip())
            out.extend("c:" + ch for ch in run)
            out.extend("c:" + run[i : i + 2] for i in range(len(run) - 1))
        else:
            out.append("w:" + stem(run))
            if run.isalpha() and len(run) > 3:
                marked = f"<{run}>"
                out.extend("g:" + marked[i : i + 3] for i in range(len(marked) - 2))
    return out
