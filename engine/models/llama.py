"""Llama-architecture embedders (SmolLM2, Llama 3.x based): optional attention and MLP biases."""

from __future__ import annotations

from engine.arch_config import DecoderConfig
from engine.layers.decoder_block import DecoderOptions
from engine.models.decoder import DecoderEmbeddingModel


class LlamaEmbeddingModel(DecoderEmbeddingModel):
    @classmethod
    def options(cls, text: DecoderConfig) -> DecoderOptions:
        bias = text.attention_bias
        return DecoderOptions(qkv_bias=bias, o_bias=bias, mlp_bias=text.mlp_bias)
