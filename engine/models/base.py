"""What every model family gives the runner: a forward over a packed batch, whether it pools, how its weights load."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.model_config import ModelConfig
from engine.weights import LoadedTensor, WeightNames, load_named_weights


class EmbeddingModel(nn.Module, ABC):
    """Built straight into the serving dtype and device from the typed config; weights come after."""

    # False: forward returns final hidden states (num_tokens, hidden) and the runner pools them by config.pooling.
    # True: forward returns one vector per sequence (num_seqs, dim); pooling and projection are the model's (CLIP).
    pools_itself: ClassVar[bool] = False
    # A model that pools itself from one token per sequence ("cls" or "last"; a cross-encoder's head) says which.
    reads_one_row: ClassVar[str | None] = None
    weight_names: ClassVar[WeightNames]  # the family's checkpoint names -> ours

    @abstractmethod
    def __init__(self, config: ModelConfig, attn: AttentionBackend) -> None:
        super().__init__()

    @abstractmethod
    def forward(self, batch: ForwardBatch) -> torch.Tensor: ...

    def finishes_on_pooled_rows(self, pooling: str) -> bool:
        """Whether forward may skip what this pooling never reads: given batch.pooled_rows (set by the runner),
        the last layer runs on those rows alone and returns (num_seqs, hidden). Families that can say yes."""
        return False

    def load_weights(self, weights: Iterable[tuple[str, LoadedTensor]]) -> None:
        """Every parameter from the checkpoint, renamed by `weight_names`; a missing or unknown tensor is an error."""
        load_named_weights(self, weights, self.weight_names)
