"""Pooling over flat hidden states by sequence offsets: CLS (first token), LAST (final token), MEAN."""

from __future__ import annotations

import torch

POOLING_METHODS = ("cls", "last", "mean")


def pooled_row_indices(cu_seqlens: torch.Tensor, method: str) -> torch.Tensor | None:
    """The one row per sequence that CLS or LAST pooling reads; None for MEAN, which reads them all."""
    if method == "cls":
        return cu_seqlens[:-1].long()
    if method == "last":
        return cu_seqlens[1:].long() - 1
    return None


def pool_hidden_states(hidden: torch.Tensor, cu_seqlens: torch.Tensor, method: str) -> torch.Tensor:
    """hidden: (num_tokens, dim), cu_seqlens: (num_seqs + 1,) -> (num_seqs, dim) in float32."""
    rows = pooled_row_indices(cu_seqlens, method)
    if rows is not None:
        return hidden[rows].float()
    starts = cu_seqlens[:-1].long()
    ends = cu_seqlens[1:].long()
    if method == "mean":
        # segment_reduce sums each sequence on its own, so a vector never depends on its neighbours
        return torch.segment_reduce(hidden.float(), "mean", lengths=ends - starts, axis=0)
    raise ValueError(f"pooling {method!r} is not one of {POOLING_METHODS}")
