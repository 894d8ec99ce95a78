"""FlashInfer's ragged prefill equals the per-sequence SDPA backend (GPU only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.attention import flashinfer_installed
from engine.attention.torch_native import TorchNativeBackend
from engine.forward_batch import ForwardBatch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() or not flashinfer_installed(), reason="needs CUDA and flashinfer"),
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads, kv_heads, head_dim", [(16, 16, 64), (16, 8, 128)])
def test_flashinfer_matches_sdpa_on_a_ragged_batch(causal, heads, kv_heads, head_dim):
    from engine.attention.flashinfer_backend import FlashInferBackend

    torch.manual_seed(0)
    lens = [1, 7, 64, 300, 33]
    batch = ForwardBatch.from_sequences([np.zeros(n, dtype=np.int32) for n in lens], "cuda")
    total = sum(lens)
    q = torch.randn(total, heads, head_dim, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(total, kv_heads, head_dim, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(total, kv_heads, head_dim, device="cuda", dtype=torch.bfloat16)
    fast, slow = FlashInferBackend("cuda"), TorchNativeBackend()
    fast.prepare(batch)
    out = fast.forward(q, k, v, batch, causal, head_dim**-0.5)
    slow.prepare(batch)
    ref = slow.forward(q.float(), k.float(), v.float(), batch, causal, head_dim**-0.5)
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 1e-2, rel
