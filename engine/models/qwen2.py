"""Qwen2-architecture embedders (GTE-Qwen2): q, k and v carry biases, the output projection does not."""

from __future__ import annotations

from engine.arch_config import DecoderConfig
from engine.layers.decoder_block import DecoderOptions
from engine.models.decoder import DecoderEmbeddingModel


class Qwen2EmbeddingModel(DecoderEmbeddingModel):
    @classmethod
    def options(cls, text: DecoderConfig) -> DecoderOptions:
        return DecoderOptions(qkv_bias=True)
