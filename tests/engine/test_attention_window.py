"""CPU attention on packed batches (length groups, local windows) equals a direct masked softmax per sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.attention.torch_native import TorchNativeBackend, attend_per_sequence, sequence_bounds
from engine.forward_batch import ForwardBatch


def _batch(seq_lens: list[int]) -> ForwardBatch:
    return ForwardBatch.from_sequences([np.zeros(n, dtype=np.int32) for n in seq_lens], "cpu")


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
    seq_lens = [1, 3, 9, 6, 17, 33, 16]  # shorter and longer than the window; one, two and three length groups
    total, heads, dim = sum(seq_lens), 2, 8
    q, k, v = (torch.randn(total, heads, dim, dtype=torch.float64) for _ in range(3))
    batch = _batch(seq_lens)
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
    batch = _batch([12])
    backend = TorchNativeBackend()
    backend.prepare(batch)
    full = backend.forward(q, k, v, batch, causal=False, scale=0.5)
    local = backend.forward(q, k, v, batch, causal=False, scale=0.5, window=(2, 2))
    assert not torch.allclose(full, local)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("causal", "kv_heads"), [(False, 4), (True, 4), (True, 2)])  # 2: grouped-query heads
def test_length_groups_equal_one_call_per_sequence(dtype, causal, kv_heads):
    torch.manual_seed(2)
    seq_lens = [int(n) for n in np.random.default_rng(2).integers(1, 120, size=40)]
    total = sum(seq_lens)
    q = torch.randn(total, 4, 32).to(dtype)
    k, v = (torch.randn(total, kv_heads, 32).to(dtype) for _ in range(2))
    batch = _batch(seq_lens)
    backend = TorchNativeBackend()
    backend.prepare(batch)
    grouped = backend.forward(q, k, v, batch, causal=causal, scale=0.2)
    assert 1 < len(batch.attn_metadata.groups) < len(seq_lens)  # built by the forward, on first need
    per_sequence = attend_per_sequence(q, k, v, sequence_bounds(seq_lens), causal, 0.2, None)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(grouped, per_sequence, atol=tolerance, rtol=tolerance)


def test_a_sequence_gets_the_same_bits_alone_and_in_any_batch():
    torch.manual_seed(3)
    lens = [37, 5, 40, 33, 48, 1]  # 37 shares its padded length (48) with 40, 33 and 48
    total = sum(lens)
    q, k, v = (torch.randn(total, 4, 32).to(torch.bfloat16) for _ in range(3))
    backend = TorchNativeBackend()
    together = _batch(lens)
    backend.prepare(together)
    out = backend.forward(q, k, v, together, causal=False, scale=0.2)
    alone = _batch([37])
    backend.prepare(alone)
    out_alone = backend.forward(q[:37], k[:37], v[:37], alone, causal=False, scale=0.2)
    assert torch.equal(out[:37], out_alone)
