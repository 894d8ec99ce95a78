"""Llama-architecture embedders (SmolLM2, Llama 3.x based): optional attention and MLP biases."""

from __future__ import annotations

from engine.layers.decoder_block import DecoderOptions
from engine.models.decoder import DecoderEmbeddingModel


class LlamaEmbeddingModel(DecoderEmbeddingModel):
    @classmethod
    def options(cls, cfg: dict) -> DecoderOptions:
        bias = bool(cfg.get("attention_bias", False))
        return DecoderOptions(qkv_bias=bias, o_bias=bias, mlp_bias=bool(cfg.get("mlp_bias", False)))
