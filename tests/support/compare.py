"""Per-vector cosine similarity, the measure every parity test asserts on, and the batch-invariance checks built on it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

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


def assert_batch_invariant(runner, ids: list[np.ndarray]) -> None:
    """Each input alone, in one mixed batch, and in that batch reversed: the same vectors."""
    assert len({len(x) for x in ids}) > 4, "the batch must mix lengths"
    batched = runner.embed(ids)
    alone = np.concatenate([runner.embed([x]) for x in ids])
    reversed_batch = runner.embed(ids[::-1])[::-1]
    assert_close_vectors(alone, batched)
    assert_close_vectors(reversed_batch, batched)
    # Different token counts change the matmul blocking, so only float32 rounding may differ.
    unit = np.linalg.norm(batched, axis=1, keepdims=True)
    assert np.abs(alone / unit - batched / unit).max() < 2e-5


def assert_alone_equals_concurrent_batches(embed_texts: Callable[[list[str]], np.ndarray], texts: list[str]) -> None:
    """Six texts sent one by one embed as they do inside four concurrent requests that share batches."""
    alone = np.concatenate([embed_texts([text]) for text in texts[:6]])
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: embed_texts(texts[i::4]), range(4)))
    together = np.array([answers[i % 4][i // 4] for i in range(6)])
    assert_close_vectors(alone, together)
    assert np.abs(alone - together).max() < 1e-5
