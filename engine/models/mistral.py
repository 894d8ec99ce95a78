"""Mistral-architecture embedders (E5-Mistral): no biases anywhere."""

from __future__ import annotations

from engine.arch_config import DecoderConfig
from engine.layers.decoder_block import DecoderOptions
from engine.models.decoder import DecoderEmbeddingModel


class MistralEmbeddingModel(DecoderEmbeddingModel):
    @classmethod
    def options(cls, text: DecoderConfig) -> DecoderOptions:
        return DecoderOptions()
