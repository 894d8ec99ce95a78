"""Maps config.json `architectures` names to our model classes and their family defaults, without importing torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """Where a family's implementation lives and what it does when the folder says nothing."""

    module: str
    class_name: str
    default_pooling: str  # "cls" | "mean" | "last"
    default_normalize: bool
    position_offset: int = 0  # positions the family reserves at the start (RoBERTa: 2)
    multimodal: str | None = None  # how the frontend turns images into model inputs: "qwen2_vl" | "clip"


_BERT = ModelSpec("engine.models.bert", "BertEmbeddingModel", default_pooling="cls", default_normalize=True)

# Base classes and the task heads users ship; the heads' extra weights are ignored.
MODEL_SPECS: dict[str, ModelSpec] = {
    "BertModel": _BERT,
    "BertForMaskedLM": _BERT,
    "BertForSequenceClassification": _BERT,
    # multimodal: GME pools the last token of a Qwen2-VL; CLIP pools inside the model (text EOS, image CLS) and projects
    "Qwen2VLForConditionalGeneration": ModelSpec(
        "engine.models.qwen2_vl", "Qwen2VLEmbeddingModel", "last", True, multimodal="qwen2_vl"
    ),
    "CLIPModel": ModelSpec("engine.models.clip", "CLIPEmbeddingModel", "model", True, multimodal="clip"),
}


class UnsupportedModelError(ValueError):
    """The folder's architecture has no implementation here."""


def spec_for(architecture: str) -> ModelSpec:
    try:
        return MODEL_SPECS[architecture]
    except KeyError:
        known = ", ".join(sorted(MODEL_SPECS))
        raise UnsupportedModelError(f"architecture {architecture!r} is not supported; supported: {known}") from None


def load_model_class(architecture: str) -> type:
    """Import the model module lazily so the frontend never pays for it."""
    spec = spec_for(architecture)
    return getattr(importlib.import_module(spec.module), spec.class_name)
