"""Per-vector cosine similarity, the measure every parity test asserts on."""

from __future__ import annotations

import numpy as np


def cosine_per_row(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def assert_close_vectors(actual, expected, min_cosine: float = 0.99999) -> None:
    cos = cosine_per_row(actual, expected)
    worst = int(np.argmin(cos))
    assert cos.min() >= min_cosine, f"row {worst} cosine {cos[worst]:.7f} < {min_cosine}"
