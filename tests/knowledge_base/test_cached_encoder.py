"""CachedEncoder: a bounded least-recently-used cache of sentence vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.encoder import CachedEncoder, HashingEncoder, Matrix


class Counting:
    """A real (hashing) encoder that records which texts it was asked to encode."""

    def __init__(self) -> None:
        self.inner = HashingEncoder(dim=64)
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str]) -> Matrix:
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def test_cache_never_holds_more_than_its_bound() -> None:
    inner = Counting()
    cache = CachedEncoder(inner, max_entries=3)
    for n in range(10):
        cache.encode([f"question {n}"])
        assert len(cache) <= 3
    assert len(cache) == 3
    assert "question 9" in cache and "question 0" not in cache


def test_least_recently_used_goes_first_and_comes_back_encoded_again() -> None:
    inner = Counting()
    cache = CachedEncoder(inner, max_entries=3)
    cache.encode(["a", "b", "c"])
    cache.encode(["a"])  # a hit: "a" is now the most recent
    assert inner.calls == [["a", "b", "c"]]
    cache.encode(["d"])  # evicts "b", the least recently used
    assert "b" not in cache and "a" in cache
    again = cache.encode(["b", "a"])
    assert inner.calls[-1] == ["b"]
    np.testing.assert_array_equal(again, inner.inner.encode(["b", "a"]))


def test_a_batch_larger_than_the_bound_is_still_answered_whole() -> None:
    inner = Counting()
    cache = CachedEncoder(inner, max_entries=2)
    texts = ["one", "two", "three", "two"]
    vectors = cache.encode(texts)
    np.testing.assert_array_equal(vectors, inner.inner.encode(texts))
    assert len(cache) == 2
    assert cache.encode([]).shape == (0, 64)


def test_saved_cache_reloads_within_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    first = CachedEncoder(Counting(), path=path, max_entries=10)
    first.encode([f"t{n}" for n in range(6)])
    first.save()
    inner = Counting()
    reloaded = CachedEncoder(inner, path=path, max_entries=4)
    assert len(reloaded) == 4 and "t5" in reloaded and "t0" not in reloaded
    reloaded.encode(["t5"])
    assert inner.calls == []


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        CachedEncoder(Counting(), max_entries=0)
