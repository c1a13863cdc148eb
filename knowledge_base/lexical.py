"""A sparse lexical index over phrasings: BM25 and tf-idf cosine from one inverted index.

Numpy only: postings are flat arrays sliced per query term and summed with ``bincount``,
which keeps a query over 10,000 phrasings well under a millisecond.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from knowledge_base.text_features import features as default_features

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class LexicalScores:
    """Scores of one query against every document of a :class:`LexicalIndex`."""

    bm25: Vector
    cosine: Vector


class LexicalIndex:
    """BM25 (Robertson k1/b) and sublinear tf-idf cosine over the given documents.

    Args:
        documents: The texts, usually every phrasing of every entry.
        featurize: Text -> features; :func:`knowledge_base.text_features.features` by default.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
    """

    def __init__(
        self,
        documents: Sequence[str],
        *,
        featurize: Callable[[str], list[str]] = default_features,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self._featurize = featurize
        self._n_docs = len(documents)
        counts = [Counter(featurize(doc)) for doc in documents]
        vocab: dict[str, int] = {}
        for c in counts:
            for term in c:
                vocab.setdefault(term, len(vocab))
        self._vocab = vocab
        df = np.zeros(len(vocab), dtype=np.float64)
        triples: list[tuple[int, int, int]] = []
        lengths = np.zeros(max(self._n_docs, 1), dtype=np.float64)
        for doc, c in enumerate(counts):
            lengths[doc] = sum(c.values())
            for term, tf in c.items():
                tid = vocab[term]
                df[tid] += 1
                triples.append((tid, doc, tf))
        n = max(self._n_docs, 1)
        self._idf_bm25 = np.log1p((n - df + 0.5) / (df + 0.5))
        self._idf = np.log((1 + n) / (1 + df)) + 1.0
        self._avgdl = float(lengths.mean()) if self._n_docs else 1.0
        self._k1 = k1
        self._b = b

        triples.sort()
        terms = np.fromiter((t[0] for t in triples), dtype=np.int64, count=len(triples))
        self._docs = np.fromiter((t[1] for t in triples), dtype=np.int64, count=len(triples))
        tf_arr = np.fromiter((t[2] for t in triples), dtype=np.float64, count=len(triples))
        dl = lengths[self._docs] if len(triples) else np.zeros(0)
        saturation = tf_arr * (k1 + 1) / (tf_arr + k1 * (1 - b + b * dl / self._avgdl))
        self._w_bm25 = (self._idf_bm25[terms] * saturation).astype(np.float32)
        w_tfidf = (1 + np.log(np.maximum(tf_arr, 1))) * self._idf[terms]
        norms = np.sqrt(np.bincount(self._docs, weights=w_tfidf**2, minlength=n))
        self._w_cos = (w_tfidf / np.maximum(norms[self._docs], 1e-12)).astype(np.float32)
        self._offsets = np.searchsorted(terms, np.arange(len(vocab) + 1)).astype(np.int64)

    def __len__(self) -> int:
        return self._n_docs

    def score(self, text: str) -> LexicalScores:
        """BM25 (normalised by the query's own best possible score) and cosine per document.

        Normalising BM25 by the score the query would get against an identical document
        maps it to about [0, 1], so it can be mixed with cosine similarities.
        """
        counts = Counter(self._featurize(text))
        bm25 = np.zeros(self._n_docs, dtype=np.float32)
        cos = np.zeros(self._n_docs, dtype=np.float32)
        known = [(self._vocab[t], tf) for t, tf in counts.items() if t in self._vocab]
        if not known or not self._n_docs:
            return LexicalScores(bm25=bm25, cosine=cos)
        q_len = float(sum(counts.values()))
        slices = [
            (self._offsets[tid], self._offsets[tid + 1], tf, self._idf[tid]) for tid, tf in known
        ]
        docs = np.concatenate([self._docs[a:b] for a, b, _, _ in slices])
        w_bm = np.concatenate([self._w_bm25[a:b] for a, b, _, _ in slices])
        q_cos = np.concatenate(
            [np.full(b - a, (1 + math.log(tf)) * idf) for a, b, tf, idf in slices]
        )
        w_c = np.concatenate([self._w_cos[a:b] for a, b, _, _ in slices]) * q_cos
        # Unknown query terms still count in the query norm: they are evidence against a match.
        q_norm = math.sqrt(
            sum(
                (
                    (1 + math.log(tf))
                    * (
                        self._idf[self._vocab[t]]
                        if t in self._vocab
                        else math.log(1 + self._n_docs) + 1.0
                    )
                )
                ** 2
                for t, tf in counts.items()
            )
        )
        bm25 = np.bincount(docs, weights=w_bm, minlength=self._n_docs).astype(np.float32)
        cos = (np.bincount(docs, weights=w_c, minlength=self._n_docs) / q_norm).astype(np.float32)
        k1, b = self._k1, self._b
        self_score = sum(
            self._idf_bm25[tid] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * q_len / self._avgdl))
            for tid, tf in known
        ) + sum(math.log1p(self._n_docs + 0.5) for t in counts if t not in self._vocab)
        bm25 /= max(float(self_score), 1e-9)
        return LexicalScores(bm25=np.minimum(bm25, 1.0), cosine=cos)
