"""CPU attention: the AMX varlen kernel over the packed batch where it runs, else SDPA, one call per length group."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.attention.base import AttentionBackend
from engine.attention.cpu_kernel import VarlenAttention
from engine.attention.length_groups import GroupedBatch, attend_from_rows, attend_in_groups, group_by_length
from engine.attention.masks import band_mask, band_window
from engine.forward_batch import ForwardBatch


class TorchNativeBackend(AttentionBackend):
    # One SDPA call per group of sequences padded to the same length (engine/attention/length_groups.py), or, in
    # bfloat16 on AMX, one call of the varlen kernel for the whole batch, local windows included
    # (engine/attention/cpu_kernel.py).
    name = "torch_native"
    attends_from_rows = True

    def __init__(self, varlen_kernel: VarlenAttention | None = None):
        self.varlen_kernel = varlen_kernel

    def describe(self) -> str:
        return f"{self.name}+amx-varlen" if self.varlen_kernel is not None else self.name

    def prepare(self, batch: ForwardBatch) -> None:
        batch.attn_metadata = None  # the length groups, built by the first layer that needs them

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        batch: ForwardBatch,
        causal: bool,
        scale: float,
        window: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        if self.varlen_kernel is not None and kernel_takes(q, k, v):
            left, right = window if window is not None else (-1, -1)  # -1: no bound on that side
            k, v = _heads_packed(k), _heads_packed(v)
            return self.varlen_kernel(_heads_packed(q), k, v, batch.cu_seqlens, causal, scale, left, right)
        return attend_in_groups(q, k, v, _groups(batch), causal, scale, window)

    def forward_rows(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: ForwardBatch, scale: float
    ) -> torch.Tensor:
        return attend_from_rows(q, k, v, _groups(batch), scale)


def kernel_takes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """The shapes the varlen kernel serves: bf16 on the CPU, head size a multiple of 32, whole GQA groups."""
    head_dim = q.shape[-1]
    return (
        q.device.type == "cpu"
        and all(t.dtype == torch.bfloat16 for t in (q, k, v))
        and head_dim % 32 == 0
        and q.shape[1] % k.shape[1] == 0
    )


def _heads_packed(t: torch.Tensor) -> torch.Tensor:
    """(tokens, heads, head_dim) with each token's heads side by side, as the kernel reads them (a view usually is)."""
    return t if t.stride(2) == 1 and t.stride(1) == t.shape[2] else t.contiguous()


def _groups(batch: ForwardBatch) -> GroupedBatch:
    if batch.attn_metadata is None:
        batch.attn_metadata = group_by_length(batch.seq_lens, batch.input_ids.device)
    return batch.attn_metadata


def sequence_bounds(seq_lens: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each sequence in the packed batch."""
    bounds = []
    start = 0
    for length in seq_lens:
        bounds.append((start, start + length))
        start += length
    return bounds


def attend_per_sequence(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bounds: list[tuple[int, int]],
    causal: bool,
    scale: float,
    window: tuple[int, int] | None,
) -> torch.Tensor:
    """SDPA on each packed sequence in turn (FlashInfer's path for local layers, and the tests' reference)."""
    num_tokens, num_heads, head_dim = q.shape
    gqa = k.shape[1] != num_heads
    window = band_window(window, causal)
    out = torch.empty((num_tokens, num_heads, head_dim), dtype=q.dtype, device=q.device)
    for start, end in bounds:
        # (L, H, D) -> (1, H, L, D)
        qs = q[start:end].transpose(0, 1).unsqueeze(0)
        ks = k[start:end].transpose(0, 1).unsqueeze(0)
        vs = v[start:end].transpose(0, 1).unsqueeze(0)
        # A window wider than the sequence masks nothing: skip the mask and keep the fast kernel.
        if window is not None and end - start > min(window) + 1:
            mask = band_mask(end - start, window, q.device)
            o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale, enable_gqa=gqa)
        else:
            o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal, scale=scale, enable_gqa=gqa)
        out[start:end] = o.squeeze(0).transpose(0, 1)
    return out.view(num_tokens, num_heads * head_dim)
