"""CPU attention: torch's scaled_dot_product_attention run on each sequence of the packed batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.attention.base import AttentionBackend
from engine.forward_batch import ForwardBatch


class TorchNativeBackend(AttentionBackend):
    # One SDPA call per sequence: no padding FLOPs, and a sequence's result cannot depend on its neighbours.
    name = "torch_native"

    def prepare(self, batch: ForwardBatch) -> None:
        bounds = []
        start = 0
        for length in batch.seq_lens:
            bounds.append((start, start + length))
            start += length
        batch.attn_metadata = bounds

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: ForwardBatch, causal: bool, scale: float
    ) -> torch.Tensor:
        num_tokens, num_heads, head_dim = q.shape
        gqa = k.shape[1] != num_heads
        out = torch.empty((num_tokens, num_heads, head_dim), dtype=q.dtype, device=q.device)
        for start, end in batch.attn_metadata:
            # (L, H, D) -> (1, H, L, D)
            qs = q[start:end].transpose(0, 1).unsqueeze(0)
            ks = k[start:end].transpose(0, 1).unsqueeze(0)
            vs = v[start:end].transpose(0, 1).unsqueeze(0)
            o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal, scale=scale, enable_gqa=gqa)
            out[start:end] = o.squeeze(0).transpose(0, 1)
        return out.view(num_tokens, num_heads * head_dim)
