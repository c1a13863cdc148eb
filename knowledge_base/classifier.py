"""Multinomial logistic regression in numpy, trained on a knowledge base's own phrasings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SoftmaxClassifier:
    """A trained linear softmax model: ``probabilities(X) = softmax(X @ weights + bias)``."""

    weights: Matrix
    bias: Matrix

    def logits(self, x: Matrix) -> Matrix:
        """Raw class scores, one row per input row."""
        out: Matrix = x @ self.weights + self.bias
        return out

    def probabilities(self, x: Matrix) -> Matrix:
        """Class probabilities, one row per input row."""
        return softmax(self.logits(x))


def softmax(z: Matrix) -> Matrix:
    """Row-wise softmax, stable for large logits."""
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: Matrix = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def _softmax_inplace(z: Matrix) -> Matrix:
    """:func:`softmax` without temporaries: training spends a fifth of its time in softmax
    over an (phrasings x entries) array, and each copy of it is 40 MB for 1,000 x 10,000."""
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def train_softmax(
    x: Matrix,
    y: Labels,
    n_classes: int,
    *,
    l2: float = 1e-4,
    steps: int = 150,
    learning_rate: float = 0.05,
    init_scale: float = 10.0,
    batch_size: int | None = None,
    seed: int = 0,
) -> SoftmaxClassifier:
    """Fit softmax regression with Adam, starting from nearest-centroid weights.

    Starting from the class centroids (scaled) means even a few steps give a sensible model.
    Classes are weighted equally, so an entry with 100 phrasings does not drown one with 3.

    With ``batch_size`` smaller than the number of rows, each step uses a shuffled
    mini-batch. Adam moves each weight by about ``learning_rate`` per step whatever the batch,
    so the step count (not the number of passes) is what regularises; a step on 2,048 of
    10,000 phrasings costs a fifth of a full one and gave the same top-1 on CLINC150 val
    (0.950) and the Chinese FAQ dev split (0.727 vs 0.730), and a build of 1,000 entries x 10
    phrasings spent nearly all its time in these products.

    Args:
        x: Unit-length inputs, ``(n, d)``.
        y: Class index of each row.
        n_classes: Number of classes (some may have no rows).
        l2: Weight decay on ``weights``.
        steps: Adam steps.
        learning_rate: Adam step size.
        init_scale: Scale of the centroid initialisation (an inverse temperature).
        batch_size: Rows per step; None (or at least ``len(x)``) means full batch.
        seed: Shuffles the mini-batches reproducibly.
    """
    n, d = x.shape
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    centroids = np.zeros((n_classes, d), dtype=np.float32)
    np.add.at(centroids, y, x)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-9)
    w = (centroids.T * init_scale).astype(np.float32)
    b = np.zeros((1, n_classes), dtype=np.float32)
    sample_weight = (1.0 / np.maximum(counts[y], 1.0)).astype(np.float32)
    sample_weight /= sample_weight.sum()
    batch = n if batch_size is None or batch_size >= n else max(1, batch_size)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n) if batch < n else np.arange(n)
    pos = 0
    m_w: npt.NDArray[np.floating[Any]] = np.zeros_like(w)
    v_w: npt.NDArray[np.floating[Any]] = np.zeros_like(w)
    m_b: npt.NDArray[np.floating[Any]] = np.zeros_like(b)
    v_b: npt.NDArray[np.floating[Any]] = np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        if batch < n:
            if pos + batch > n:
                order, pos = rng.permutation(n), 0
            rows = order[pos : pos + batch]
            pos += batch
            xb, yb = x[rows], y[rows]
            # Rescaled so a mini-batch's gradient estimates the full one.
            wb = sample_weight[rows] * np.float32(n / batch)
        else:
            xb, yb, wb = x, y, sample_weight
        p = _softmax_inplace(xb @ w + b)
        p[np.arange(len(yb)), yb] -= 1.0
        p *= wb[:, None]
        g_w = xb.T @ p + l2 * w
        g_b = p.sum(axis=0, keepdims=True)
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        c1 = 1 - beta1**step
        c2 = 1 - beta2**step
        w = (w - learning_rate * (m_w / c1) / (np.sqrt(v_w / c2) + eps)).astype(np.float32)
        b = (b - learning_rate * (m_b / c1) / (np.sqrt(v_b / c2) + eps)).astype(np.float32)
    return SoftmaxClassifier(weights=w.astype(np.float32), bias=b.astype(np.float32))
