"""GPU attention with FlashInfer's ragged prefill kernels: no KV cache, one plan per batch and shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from engine.attention.base import AttentionBackend
from engine.forward_batch import ForwardBatch

# Head sizes and dtypes FlashInfer's prefill kernels are built for; others fall back to torch_native.
SUPPORTED_HEAD_DIMS = (64, 128, 256)
SUPPORTED_DTYPES = ("float16", "bfloat16")
_WORKSPACE_BYTES = 128 * 1024 * 1024


@dataclass
class FlashInferMetadata:
    """What every layer's kernel call shares within one batch."""

    indptr: torch.Tensor  # (num_seqs + 1,) int32 on the device: query and key offsets are the same
    indptr_cpu: torch.Tensor  # host mirror, so planning never reads back from the device
    planned: set = field(default_factory=set)  # (causal, heads, kv_heads, head_dim, dtype) planned for this batch


def build_metadata(batch: ForwardBatch) -> FlashInferMetadata:
    indptr_cpu = batch.cu_seqlens.to("cpu", torch.int32)
    return FlashInferMetadata(batch.cu_seqlens.to(torch.int32), indptr_cpu)


def unsupported_reason(head_dims: set[int], dtype: str) -> str | None:
    """Why FlashInfer cannot run this model, or None when it can."""
    bad = sorted(d for d in head_dims if d not in SUPPORTED_HEAD_DIMS)
    if bad:
        return f"head size {bad} is not one of FlashInfer's {SUPPORTED_HEAD_DIMS}"
    if dtype not in SUPPORTED_DTYPES:
        return f"dtype {dtype} is not one of FlashInfer's {SUPPORTED_DTYPES}"
    return None


class FlashInferBackend(AttentionBackend):
    name = "flashinfer"

    def __init__(self, device: torch.device | str):
        import flashinfer  # lazy: an optional GPU extra

        self._flashinfer = flashinfer
        self._workspace = torch.empty(_WORKSPACE_BYTES, dtype=torch.uint8, device=device)
        # One wrapper per attention shape (a multimodal model has a vision and a text shape).
        self._wrappers: dict[tuple, Any] = {}

    def prepare(self, batch: ForwardBatch) -> None:
        batch.attn_metadata = build_metadata(batch)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: ForwardBatch, causal: bool, scale: float
    ) -> torch.Tensor:
        meta: FlashInferMetadata = batch.attn_metadata
        num_tokens, num_heads, head_dim = q.shape
        key = (causal, num_heads, k.shape[1], head_dim, q.dtype)
        wrapper = self._wrappers.get(key)
        if wrapper is None:
            wrapper = self._flashinfer.BatchPrefillWithRaggedKVCacheWrapper(self._workspace, "NHD")
            self._wrappers[key] = wrapper
        if key not in meta.planned:  # first layer of this shape in this batch; the rest reuse the plan
            wrapper.plan(
                meta.indptr,
                meta.indptr,
                num_heads,
                k.shape[1],
                head_dim,
                causal=causal,
                sm_scale=scale,
                q_data_type=q.dtype,
                kv_data_type=k.dtype,
                qo_indptr_cpu=meta.indptr_cpu,
                kv_indptr_cpu=meta.indptr_cpu,
            )
            meta.planned.add(key)
        out = wrapper.run(q.contiguous(), k.contiguous(), v.contiguous())
        return out.view(num_tokens, num_heads * head_dim)
