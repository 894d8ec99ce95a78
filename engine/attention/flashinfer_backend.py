"""GPU attention with FlashInfer's ragged prefill kernels: no KV cache, one plan per batch and shape."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.attention.base import AttentionBackend
from engine.attention.torch_native import attend_per_sequence, sequence_bounds
from engine.forward_batch import ForwardBatch

# Head sizes and dtypes FlashInfer's prefill kernels are built for; others fall back to torch_native.
SUPPORTED_HEAD_DIMS = (64, 128, 256)
SUPPORTED_DTYPES = ("float16", "bfloat16")
_WORKSPACE_BYTES = 128 * 1024 * 1024


@dataclass
class FlashInferMetadata:
    """What every layer's kernel call shares within one batch."""

    # (num_seqs + 1,) int32 on the host: query and key offsets are the same. plan() reads it on the host and
    # uploads it itself, so planning never waits for the device.
    indptr_host: torch.Tensor
    planned: set = field(default_factory=set)  # (causal, heads, kv_heads, head_dim, dtype) planned for this batch


def build_metadata(batch: ForwardBatch, pin: bool = False) -> FlashInferMetadata:
    """The packed offsets from the host's sequence lengths; pinned on CUDA so plan()'s upload does not block."""
    indptr = torch.tensor([0, *itertools.accumulate(batch.seq_lens)], dtype=torch.int32)
    return FlashInferMetadata(indptr.pin_memory() if pin else indptr)


def unsupported_reason(head_dims: set[int], dtype: str) -> str | None:
    """Why FlashInfer cannot run this model, or None when it can."""
    bad = sorted(d for d in head_dims if d not in SUPPORTED_HEAD_DIMS)
    if bad:
        return f"head size {bad} is not one of FlashInfer's {SUPPORTED_HEAD_DIMS}"
    if dtype not in SUPPORTED_DTYPES:
        return f"dtype {dtype} is not one of FlashInfer's {SUPPORTED_DTYPES}"
    return None


def last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The kernel reads token and head strides but assumes unit stride within a head: copy only when that fails."""
    return t if t.stride(-1) == 1 else t.contiguous()


class FlashInferBackend(AttentionBackend):
    name = "flashinfer"

    def __init__(self, device: torch.device | str):
        import flashinfer  # lazy: an optional GPU extra

        self._flashinfer = flashinfer
        self._pin = torch.device(device).type == "cuda"
        self._workspace = torch.empty(_WORKSPACE_BYTES, dtype=torch.uint8, device=device)
        # One wrapper per attention shape (a multimodal model has a vision and a text shape).
        self._wrappers: dict[tuple, Any] = {}

    def prepare(self, batch: ForwardBatch) -> None:
        batch.attn_metadata = build_metadata(batch, pin=self._pin)

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
        if window is not None:
            # The ragged kernel bounds only the left side of a window; local bidirectional layers use SDPA.
            return attend_per_sequence(q, k, v, sequence_bounds(batch.seq_lens), causal, scale, window)
        meta: FlashInferMetadata = batch.attn_metadata
        num_tokens, num_heads, head_dim = q.shape
        key = (causal, num_heads, k.shape[1], head_dim, q.dtype)
        wrapper = self._wrappers.get(key)
        if wrapper is None:
            wrapper = self._flashinfer.BatchPrefillWithRaggedKVCacheWrapper(self._workspace, "NHD")
            self._wrappers[key] = wrapper
        if key not in meta.planned:  # first layer of this shape in this batch; the rest reuse the plan
            wrapper.plan(
                meta.indptr_host,
                meta.indptr_host,
                num_heads,
                k.shape[1],
                head_dim,
                causal=causal,
                sm_scale=scale,
                q_data_type=q.dtype,
                kv_data_type=k.dtype,
            )
            meta.planned.add(key)
        # q/k/v are strided views of the fused projection: the kernel takes them as they are.
        out = wrapper.run(last_dim_contiguous(q), last_dim_contiguous(k), last_dim_contiguous(v))
        return out.view(num_tokens, num_heads * head_dim)
