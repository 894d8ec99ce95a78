"""Mistral-architecture embedders (E5-Mistral): no biases anywhere."""

from __future__ import annotations

from engine.layers.decoder_block import DecoderOptions
from engine.models.decoder import DecoderEmbeddingModel


class MistralEmbeddingModel(DecoderEmbeddingModel):
    @classmethod
    def options(cls, cfg: dict) -> DecoderOptions:
        return DecoderOptions()
