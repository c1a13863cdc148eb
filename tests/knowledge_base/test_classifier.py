from __future__ import annotations

import numpy as np

from knowledge_base.classifier import train_softmax


def _clusters(
    n_classes: int = 6, per_class: int = 40, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, 16)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), per_class).astype(np.int64)
    x = centres[y] + 0.6 * rng.standard_normal((len(y), 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y


def test_batch_at_least_the_rows_is_full_batch() -> None:
    x, y = _clusters()
    full = train_softmax(x, y, 6, steps=20)
    same = train_softmax(x, y, 6, steps=20, batch_size=len(x))
    np.testing.assert_array_equal(full.weights, same.weights)
    np.testing.assert_array_equal(full.bias, same.bias)


def test_mini_batches_learn_and_are_reproducible() -> None:
    every_x, every_y = _clusters(per_class=80)
    # Even rows train, odd rows are the held-out questions.
    x, y, test_x, test_y = every_x[::2], every_y[::2], every_x[1::2], every_y[1::2]
    first = train_softmax(x, y, 6, steps=60, batch_size=32, seed=5)
    again = train_softmax(x, y, 6, steps=60, batch_size=32, seed=5)
    other = train_softmax(x, y, 6, steps=60, batch_size=32, seed=6)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.array_equal(first.weights, other.weights)
    full = train_softmax(x, y, 6, steps=60)
    mini_acc = float((first.probabilities(test_x).argmax(axis=1) == test_y).mean())
    full_acc = float((full.probabilities(test_x).argmax(axis=1) == test_y).mean())
    # Same held-out accuracy within a couple of points, from a fraction of the work.
    assert mini_acc >= full_acc - 0.03
    assert mini_acc > 0.9
