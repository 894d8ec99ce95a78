"""Qwen3-Reranker: a Qwen3ForCausalLM that scores a prompted query-document pair by its next token, "yes" or "no"."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.model_config import ModelConfig
from engine.models.qwen3 import Qwen3EmbeddingModel
from engine.pooling import pooled_row_indices
from engine.weights import LoadedTensor, load_named_weights

# Checkpoint names of the tensors whose rows score: the LM head, or the token embeddings it is tied to.
_LM_HEAD = "lm_head.weight"
_EMBED_TOKENS = ("model.embed_tokens.weight", "embed_tokens.weight")


class Qwen3Reranker(Qwen3EmbeddingModel):
    """One float32 logit per pair: logit("yes") - logit("no") at the last token, whose sigmoid is the model card's
    softmax of "yes" over the two. Only those two rows of the LM head are kept (a full head is vocab x hidden)."""

    pools_itself = True
    reads_one_row = "last"
    score_rows: torch.Tensor  # (2, hidden): the LM head's rows of "no" and "yes"

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        self.score_token_ids = config.score_token_ids  # ("no", "yes")
        # a buffer, not a parameter: it is cut from a checkpoint tensor in load_weights, not loaded by name
        self.register_buffer("score_rows", torch.empty(len(self.score_token_ids), config.text.hidden_size))

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        hidden = super().forward(batch)  # (num_tokens, hidden), or the pooled rows alone when the batch names them
        # (num_seqs, hidden): the token that predicts the answer
        last = hidden if batch.pooled_rows is not None else hidden[pooled_row_indices(batch.cu_seqlens, "last")]
        no, yes = (last.float() @ self.score_rows.float().T).unbind(-1)
        return (yes - no).unsqueeze(-1)  # (num_seqs, 1)

    def load_weights(self, weights: Iterable[tuple[str, LoadedTensor]]) -> None:
        """The stack by name; the scoring rows from lm_head.weight, or, when the checkpoint has none (tied
        embeddings, as Qwen3-Reranker-0.6B), from the token embeddings."""
        sources: set[str] = set()

        def cut_rows(stream: Iterable[tuple[str, LoadedTensor]]) -> Iterator[tuple[str, LoadedTensor]]:
            for name, tensor in stream:
                if name == _LM_HEAD or (name in _EMBED_TOKENS and _LM_HEAD not in sources):
                    self._copy_rows(tensor)
                    sources.add(name)
                if name != _LM_HEAD:
                    yield name, tensor

        load_named_weights(self, cut_rows(weights), self.weight_names)
        if not sources:
            raise ValueError("checkpoint has neither lm_head.weight nor the token embeddings to score with")

    def _copy_rows(self, tensor: LoadedTensor) -> None:
        for row, token_id in enumerate(self.score_token_ids):
            # a CheckpointTensor (tensor-parallel loading) reads only this row from disk
            self.score_rows[row].copy_(tensor.narrow(0, token_id, 1)[0])
