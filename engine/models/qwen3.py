"""Qwen3-architecture embedders (Qwen3-Embedding): per-head RMSNorm on q and k, optional attention biases."""

from __future__ import annotations

from engine.arch_config import DecoderConfig
from engine.layers.decoder_block import DecoderOptions
from engine.models.decoder import DecoderEmbeddingModel


class Qwen3EmbeddingModel(DecoderEmbeddingModel):
    @classmethod
    def options(cls, text: DecoderConfig) -> DecoderOptions:
        bias = text.attention_bias
        return DecoderOptions(qkv_bias=bias, o_bias=bias, qk_norm=True)
