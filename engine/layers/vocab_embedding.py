"""An embedding table split by vocabulary rows across tensor-parallel ranks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.layers.parallel_state import all_reduce_sum, tp_rank_and_size
from engine.weights import LoadedTensor, ShardId, copy_weight, refuse_shard, set_weight_loader


class VocabParallelEmbedding(nn.Module):
    """Each rank holds a contiguous slice of rows; ids outside it look up zeros, and an all-reduce sums the slices."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.tp_rank, self.tp_size = tp_rank_and_size()
        self.num_embeddings = num_embeddings
        self.rows_per_rank = -(-num_embeddings // self.tp_size)  # ceil: the last slice may be short
        self.start = self.tp_rank * self.rows_per_rank
        self.end = min(self.start + self.rows_per_rank, num_embeddings)
        self.weight = nn.Parameter(torch.empty(self.rows_per_rank, embedding_dim), requires_grad=False)
        set_weight_loader(self.weight, self.weight_loader)

    def weight_loader(self, param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None) -> None:
        refuse_shard(shard_id)
        if loaded.shape[0] != self.num_embeddings:
            raise ValueError(f"embedding has {loaded.shape[0]} rows, config says {self.num_embeddings}")
        param.data.zero_()  # padding rows of a short last slice stay zero
        copy_weight(param[: self.end - self.start], loaded.narrow(0, self.start, self.end - self.start))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.tp_size == 1:
            return F.embedding(input_ids, self.weight)
        local = input_ids - self.start
        outside = (local < 0) | (local >= self.end - self.start)
        out = F.embedding(local.masked_fill(outside, 0), self.weight)
        out.masked_fill_(outside.unsqueeze(-1), 0)
        return all_reduce_sum(out)
