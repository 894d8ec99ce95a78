"""Qwen3-architecture embedders (Qwen3-Embedding): per-head RMSNorm on q and k, optional attention biases."""

from __future__ import annotations

from engine.layers.decoder_block import DecoderOptions
from engine.models.decoder import DecoderEmbeddingModel


class Qwen3EmbeddingModel(DecoderEmbeddingModel):
    @classmethod
    def options(cls, cfg: dict) -> DecoderOptions:
        bias = bool(cfg.get("attention_bias", False))
        return DecoderOptions(qkv_bias=bias, o_bias=bias, qk_norm=True)
