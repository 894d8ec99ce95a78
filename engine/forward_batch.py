"""A packed ragged batch: every sequence's tokens concatenated, with offsets instead of padding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class ForwardBatch:
    input_ids: torch.Tensor  # (num_tokens,) int64
    positions: torch.Tensor  # (num_tokens,) int64, restarting at 0 (+ family offset) for each sequence
    seq_lens: list[int]  # host copy, for per-sequence loops without a device sync
    cu_seqlens: torch.Tensor  # (num_seqs + 1,) int32 offsets of each sequence in the flat tokens
    max_seqlen: int
    attn_metadata: Any = field(default=None)  # filled once per batch by the attention backend
    images: Any = field(default=None)  # multimodal models: an engine.image_batch.ImageBatch, else None
    token_type_ids: torch.Tensor | None = None  # (num_tokens,) int64 segment of each token (pairs); None: all 0
    # (num_seqs,) int64 rows the pooler reads; when set, the model returns only their final states, in this order
    pooled_rows: torch.Tensor | None = None

    @property
    def num_seqs(self) -> int:
        return len(self.seq_lens)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @classmethod
    def from_sequences(
        cls,
        sequences: list[np.ndarray],
        device: str | torch.device,
        position_offset: int = 0,
        token_types: list[np.ndarray] | None = None,
    ) -> ForwardBatch:
        """Pack token-id arrays (and, for query-document pairs, each one's token types) into one flat batch."""
        seq_lens = [int(len(s)) for s in sequences]
        lens = np.asarray(seq_lens, dtype=np.int64)
        cu = np.zeros(len(seq_lens) + 1, dtype=np.int32)
        np.cumsum(lens, out=cu[1:])
        flat_ids = np.concatenate(sequences).astype(np.int64, copy=False)
        # position of each token inside its own sequence: global index minus its sequence's start
        starts = np.repeat(cu[:-1].astype(np.int64), lens)
        positions = np.arange(cu[-1], dtype=np.int64) - starts + position_offset
        return cls(
            input_ids=to_device(torch.from_numpy(flat_ids), device),
            positions=to_device(torch.from_numpy(positions), device),
            seq_lens=seq_lens,
            cu_seqlens=to_device(torch.from_numpy(cu), device),
            max_seqlen=max(seq_lens),
            token_type_ids=None if token_types is None else _pack_token_types(token_types, device),
        )


def _pack_token_types(token_types: list[np.ndarray], device: str | torch.device) -> torch.Tensor:
    flat = np.concatenate(token_types).astype(np.int64, copy=False)
    return to_device(torch.from_numpy(flat), device)


def to_device(host: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """Host -> device copy; on CUDA through pinned memory without blocking, so the CPU can go on preparing."""
    if torch.device(device).type != "cuda":
        return host
    return host.pin_memory().to(device, non_blocking=True)
