"""Local (sliding-window) attention on packed batches equals a direct masked softmax per sequence."""

from __future__ import annotations

import pytest
import torch

from engine.attention.torch_native import TorchNativeBackend
from engine.forward_batch import ForwardBatch


def reference(q, k, v, causal, window, scale):
    """softmax(q k^T) v per head, masked by hand with the rule written out as loops."""
    length = q.shape[0]
    allowed = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(length):
            ok = not (causal and j > i)
            if window is not None:
                ok = ok and i - window[0] <= j <= i + window[1]
            allowed[i, j] = ok
    scores = torch.einsum("ihd,jhd->hij", q, k) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hij,jhd->ihd", scores.softmax(-1), v).reshape(length, -1)


@pytest.mark.parametrize(
    ("causal", "window"), [(False, None), (True, None), (False, (2, 2)), (False, (3, 1)), (True, (2, 2))]
)
def test_window_equals_masked_softmax_per_sequence(causal, window):
    torch.manual_seed(0)
    seq_lens = [1, 3, 9, 6]  # shorter and longer than the window
    total, heads, dim = sum(seq_lens), 2, 8
    q, k, v = (torch.randn(total, heads, dim, dtype=torch.float64) for _ in range(3))
    batch = ForwardBatch.__new__(ForwardBatch)
    batch.seq_lens = seq_lens
    backend = TorchNativeBackend()
    backend.prepare(batch)
    out = backend.forward(q, k, v, batch, causal=causal, scale=0.3, window=window)
    start = 0
    for length in seq_lens:
        end = start + length
        expected = reference(q[start:end], k[start:end], v[start:end], causal, window, 0.3)
        torch.testing.assert_close(out[start:end], expected)
        start = end


def test_window_changes_long_sequences_only():
    torch.manual_seed(1)
    q, k, v = (torch.randn(12, 1, 4) for _ in range(3))
    batch = ForwardBatch.__new__(ForwardBatch)
    batch.seq_lens = [12]
    backend = TorchNativeBackend()
    backend.prepare(batch)
    full = backend.forward(q, k, v, batch, causal=False, scale=0.5)
    local = backend.forward(q, k, v, batch, causal=False, scale=0.5, window=(2, 2))
    assert not torch.allclose(full, local)
