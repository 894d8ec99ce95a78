"""Maps config.json `architectures` names to our model classes and their family defaults, without importing torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.arch_config import (
    BertConfig,
    ClipTextConfig,
    ClipVisionConfig,
    DecoderConfig,
    Gemma3TextConfig,
    ModernBertConfig,
    Qwen2VLTextConfig,
    Qwen2VLVisionConfig,
    TextConfig,
    VisionConfig,
    XLMRobertaConfig,
)

if TYPE_CHECKING:
    from engine.models.base import EmbeddingModel


@dataclass(frozen=True)
class ModelSpec:
    """Where a family's implementation lives and what it does when the folder says nothing."""

    module: str
    class_name: str
    default_pooling: str  # "cls" | "mean" | "last" | "model" (the model pools itself)
    default_normalize: bool
    text_config: type[TextConfig]  # how config.json reads for this family
    vision_config: type[VisionConfig] | None = None
    multimodal: str | None = None  # how the frontend turns images into model inputs: "qwen2_vl" | "clip"
    task: str = "embed"  # "embed": a vector per input; "score": a cross-encoder's logits per query-document pair
    # how the frontend lays out a scored pair: "pair" (the tokenizer's pair template) | "qwen3_reranker" (the chat
    # prompt of Qwen3-Reranker's model card, scored by the next token's yes/no logits)
    pair_format: str = "pair"
    float16: bool = True  # False: the family's activations overflow float16, so --dtype float16 is refused


_BERT = ModelSpec("engine.models.bert", "BertEmbeddingModel", "cls", True, text_config=BertConfig)
_XLM_ROBERTA = ModelSpec(
    "engine.models.xlm_roberta", "XLMRobertaEmbeddingModel", "cls", True, text_config=XLMRobertaConfig
)
# ModernBERT folders without sentence-transformers files pool as sentence-transformers would build them: mean
_MODERNBERT = ModelSpec(
    "engine.models.modernbert", "ModernBertEmbeddingModel", "mean", True, text_config=ModernBertConfig
)

# Base classes and the task heads users ship; an embedder ignores its head's weights. Sequence classifiers are
# cross-encoders: they score query-document pairs (rerankers) and pool and project inside the model.
MODEL_SPECS: dict[str, ModelSpec] = {
    "BertModel": _BERT,
    "BertForMaskedLM": _BERT,
    "BertForSequenceClassification": ModelSpec(
        "engine.models.bert", "BertCrossEncoder", "model", False, text_config=BertConfig, task="score"
    ),
    "ModernBertModel": _MODERNBERT,
    "ModernBertForMaskedLM": _MODERNBERT,
    "XLMRobertaModel": _XLM_ROBERTA,
    "XLMRobertaForMaskedLM": _XLM_ROBERTA,
    "XLMRobertaForSequenceClassification": ModelSpec(
        "engine.models.xlm_roberta",
        "XLMRobertaCrossEncoder",
        "model",
        False,
        text_config=XLMRobertaConfig,
        task="score",
    ),
    # Qwen3-Reranker: a Qwen3ForCausalLM served as a reranker by overriding its architecture to this name, as vLLM
    # does (configs/qwen3-reranker-0.6b.yaml); it scores with two rows of its LM head, the "no" and "yes" tokens.
    "Qwen3ForSequenceClassification": ModelSpec(
        "engine.models.qwen3_reranker",
        "Qwen3Reranker",
        "model",
        False,
        text_config=DecoderConfig,
        task="score",
        pair_format="qwen3_reranker",
    ),
    # multimodal: GME pools the last token of a Qwen2-VL; CLIP pools inside the model (text EOS, image CLS) and projects
    "Qwen2VLForConditionalGeneration": ModelSpec(
        "engine.models.qwen2_vl",
        "Qwen2VLEmbeddingModel",
        "last",
        True,
        text_config=Qwen2VLTextConfig,
        vision_config=Qwen2VLVisionConfig,
        multimodal="qwen2_vl",
    ),
    "CLIPModel": ModelSpec(
        "engine.models.clip",
        "CLIPEmbeddingModel",
        "model",
        True,
        text_config=ClipTextConfig,
        vision_config=ClipVisionConfig,
        multimodal="clip",
    ),
}


# EmbeddingGemma: a bidirectional Gemma3TextModel, mean-pooled and projected by its Dense modules. Gemma3's activations
# overflow float16 (its model card says so), so float16 is refused.
_GEMMA3 = ModelSpec(
    "engine.models.gemma3", "Gemma3EmbeddingModel", "mean", True, text_config=Gemma3TextConfig, float16=False
)
MODEL_SPECS["Gemma3TextModel"] = _GEMMA3
MODEL_SPECS["Gemma3ForCausalLM"] = _GEMMA3


def _decoder(module: str, class_name: str) -> ModelSpec:
    # Decoder embedders pool the final token (it has seen the whole input) and normalize.
    return ModelSpec(module, class_name, "last", True, text_config=DecoderConfig)


for _family, _module, _class in (
    ("Llama", "engine.models.llama", "LlamaEmbeddingModel"),
    ("Mistral", "engine.models.mistral", "MistralEmbeddingModel"),
    ("Qwen2", "engine.models.qwen2", "Qwen2EmbeddingModel"),
    ("Qwen3", "engine.models.qwen3", "Qwen3EmbeddingModel"),
):
    for _suffix in ("Model", "ForCausalLM"):
        MODEL_SPECS[f"{_family}{_suffix}"] = _decoder(_module, _class)


class UnsupportedModelError(ValueError):
    """The folder's architecture has no implementation here."""


def spec_for(architecture: str) -> ModelSpec:
    try:
        return MODEL_SPECS[architecture]
    except KeyError:
        known = ", ".join(sorted(MODEL_SPECS))
        raise UnsupportedModelError(f"architecture {architecture!r} is not supported; supported: {known}") from None


def load_model_class(architecture: str) -> type[EmbeddingModel]:
    """Import the model module lazily so the frontend never pays for it."""
    spec = spec_for(architecture)
    return getattr(importlib.import_module(spec.module), spec.class_name)
