"""The decoder embedding model the Llama, Mistral, Qwen2 and Qwen3 families share; no LM head is built."""

from __future__ import annotations

import torch

from engine.arch_config import DecoderConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.decoder_block import FUSED_DECODER_WEIGHTS, DecoderOptions, DecoderStack
from engine.layers.rotary import RotaryEmbedding
from engine.model_config import ModelConfig
from engine.models.base import EmbeddingModel
from engine.weights import WeightNames


class DecoderEmbeddingModel(EmbeddingModel):
    """Returns final (normed) hidden states (num_tokens, hidden); last-token pooling happens outside the model."""

    weight_names = WeightNames(
        skip=r"lm_head\..*|.*rotary_emb\.inv_freq",  # an embedding model has no LM head; rotary tables are computed
        fused=FUSED_DECODER_WEIGHTS,
        renames={r"^(?!model\.)": "model."},  # base-model checkpoints (LlamaModel, ...) save without the prefix
    )

    @classmethod
    def options(cls, text: DecoderConfig) -> DecoderOptions:
        """Each family overrides this with where its config puts biases and norms."""
        return DecoderOptions()

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        text = config.text
        assert isinstance(text, DecoderConfig)  # the registry pairs decoder families with DecoderConfig
        self.model = DecoderStack(text, self.options(text), RotaryEmbedding(text.head_dim, text.rope), attn)

    def finishes_on_pooled_rows(self, pooling: str) -> bool:
        return self.model.finishes_on_pooled_rows(pooling)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        return self.model(self.model.embed_tokens(batch.input_ids), batch, batch.positions)
