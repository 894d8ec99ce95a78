"""The interface every attention backend implements: prepare once per batch, attend per layer."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from engine.forward_batch import ForwardBatch


class AttentionBackend(ABC):
    name: str = "base"
    attends_from_rows: bool = False  # whether forward_rows is implemented

    def describe(self) -> str:
        """The name, and the kernel where a backend has more than one (the startup line shows it)."""
        return self.name

    @abstractmethod
    def prepare(self, batch: ForwardBatch) -> None:
        """Build whatever per-batch metadata the kernel needs and store it on `batch.attn_metadata`."""

    @abstractmethod
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
        """q: (num_tokens, num_heads, head_dim), k/v: (num_tokens, num_kv_heads, head_dim) -> (num_tokens, num_heads * head_dim).

        Each sequence attends only to itself; with `causal`, only to its own earlier tokens. With
        `window=(left, right)`, token i also attends only to positions i-left through i+right (local layers).
        """

    def forward_rows(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: ForwardBatch, scale: float
    ) -> torch.Tensor:
        """One query per sequence that sees every key of its own sequence: a final layer whose only output read
        is the pooled row (the last token of a causal sequence, any token of a bidirectional one).

        q: (num_seqs, num_heads, head_dim), k/v: (num_tokens, num_kv_heads, head_dim) -> (num_seqs, num_heads * head_dim).
        """
        raise NotImplementedError(f"{self.name} attends from every token only")
