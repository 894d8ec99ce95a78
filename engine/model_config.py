"""The model as the server sees it: typed config.json plus overrides, pooling, normalization, context, Matryoshka."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from engine.arch_config import ArchConfigError, TextConfig, VisionConfig
from engine.classifier_tokens import ClassifierTokenError, classifier_token_ids
from engine.models.registry import ModelSpec, spec_for
from engine.st_config import SentenceTransformersInfo, read_sentence_transformers_info

_DTYPES = ("float32", "float16", "bfloat16")


class ModelConfigError(ValueError):
    """The model folder or the flags describe something we cannot serve; the message says what."""


class _TopLevel(msgspec.Struct):
    """The fields of config.json that describe the whole model rather than one of its stacks."""

    architectures: list[str] | None = None
    projection_dim: int | None = None  # CLIP: both towers project into this space
    matryoshka_dimensions: list[int] | None = None
    is_matryoshka: bool = False
    # sequence classifiers: transformers writes id2label; num_labels only comes from overrides
    id2label: dict[str, str] | None = None
    num_labels: int | None = None
    # where sentence-transformers 4-5 (and, before 4, the old key) keep a cross-encoder's activation
    sentence_transformers: dict[str, Any] | None = None
    sbert_ce_default_activation_function: str | None = None
    # vLLM's overrides that make a Qwen3-Reranker's Qwen3ForCausalLM a reranker (configs/qwen3-reranker-0.6b.yaml)
    classifier_from_token: list[str] | None = None
    is_original_qwen3_reranker: bool = False


# sentence-transformers' activation classes that a cross-encoder's scores go through, by the path it saves
SCORE_ACTIVATIONS = {
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "identity",
}


@dataclass(frozen=True)
class ModelConfig:
    model_path: str
    architecture: str
    spec: ModelSpec
    text: TextConfig  # the language model, or CLIP's text tower
    vision: VisionConfig | None  # the image tower of a multimodal model
    st_info: SentenceTransformersInfo
    pooling: str
    normalize: bool
    context_length: int
    embedding_dim: int
    matryoshka_dimensions: tuple[int, ...] | None  # None with is_matryoshka means any size up to embedding_dim
    is_matryoshka: bool
    dtype: str
    num_labels: int = 1  # logits per input of a cross-encoder
    score_activation: str = "sigmoid"  # what a cross-encoder's logit goes through unless raw scores are asked for
    score_token_ids: tuple[int, ...] = ()  # Qwen3-Reranker: the ids of "no" and "yes", the LM head rows it scores with
    quantization: str | None = None  # "int8": linear layers in int8 on the CPU (engine.layers.int8_linear)

    @property
    def task(self) -> str:
        """What the model answers: "embed" (a vector per input) or "score" (a cross-encoder's score per pair)."""
        return self.spec.task

    @property
    def vocab_size(self) -> int:
        return self.text.vocab_size

    @property
    def head_dims(self) -> set[int]:
        """Head sizes of every attention stack, so the attention backend is chosen for all of them."""
        return {self.text.head_dim} | ({self.vision.head_dim} if self.vision else set())

    @classmethod
    def load(
        cls,
        model_path: str,
        overrides: dict[str, Any] | None = None,
        context_length: int | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        quantization: str | None = None,
    ) -> ModelConfig:
        config_file = Path(model_path) / "config.json"
        if not config_file.is_file():
            raise ModelConfigError(f"no config.json in model path {model_path!r}")
        hf = json.loads(config_file.read_text(encoding="utf-8"))
        hf.update(overrides or {})
        try:
            top = msgspec.convert(hf, _TopLevel)
            if not top.architectures:
                raise ModelConfigError(f"{config_file} names no architectures")
            spec = spec_for(top.architectures[0])
            text = spec.text_config.from_hf(hf)
            vision = spec.vision_config.from_hf(hf) if spec.vision_config else None
        except (msgspec.ValidationError, ArchConfigError) as error:
            raise ModelConfigError(f"{config_file}: {error}") from None
        try:
            st_info = read_sentence_transformers_info(model_path)
        except ValueError as error:  # a module or pooling mode the engine does not implement
            raise ModelConfigError(f"{model_path}: {error}") from None
        pooling = st_info.pooling or spec.default_pooling
        normalize = st_info.normalize if st_info.normalize is not None else spec.default_normalize
        max_positions = text.max_position_embeddings - text.position_offset
        # Sliding-window attention is not implemented: inputs up to the window attend exactly as full causal
        # attention, so the context is capped at the window instead of serving different vectors beyond it.
        window = text.attention_window
        if window and (max_positions <= 0 or window < max_positions):
            max_positions = window
        natural_length = st_info.max_seq_length or max_positions
        if max_positions > 0:
            natural_length = min(natural_length, max_positions)
        if context_length is not None:
            if context_length < 1 or (max_positions > 0 and context_length > max_positions):
                raise ModelConfigError(
                    f"--context-length {context_length} is outside 1..{max_positions}, the model's positions"
                )
            natural_length = context_length
        embedding_dim = _embedding_dim(top.projection_dim or text.hidden_size, spec, st_info, model_path)
        matryoshka = tuple(sorted(top.matryoshka_dimensions)) if top.matryoshka_dimensions else None
        if matryoshka and (matryoshka[0] < 1 or matryoshka[-1] > embedding_dim):
            raise ModelConfigError(f"matryoshka_dimensions {list(matryoshka)} must lie in 1..{embedding_dim}")
        score_token_ids = _score_token_ids(spec, top, model_path, config_file)
        # a Qwen3-Reranker's one logit is its "yes" logit less its "no" logit, whatever labels its config lists
        num_labels = 1 if score_token_ids else top.num_labels or (len(top.id2label) if top.id2label else 1)
        if spec.task == "score" and num_labels != 1:
            raise ModelConfigError(
                f"{config_file}: a cross-encoder with {num_labels} labels is a classifier; "
                "only one-label cross-encoders (rerankers) are served"
            )
        resolved_dtype = resolve_dtype(dtype, device)
        if resolved_dtype == "float16" and not spec.float16:
            raise ModelConfigError(
                f"{top.architectures[0]} does not run in float16: its activations overflow it (as its model card "
                "says); use --dtype bfloat16 or float32"
            )
        check_quantization(quantization, device)
        return cls(
            model_path=str(model_path),
            architecture=top.architectures[0],
            spec=spec,
            text=text,
            vision=vision,
            st_info=st_info,
            pooling=pooling,
            normalize=bool(normalize),
            context_length=int(natural_length),
            embedding_dim=embedding_dim,
            matryoshka_dimensions=matryoshka,
            is_matryoshka=bool(matryoshka) or top.is_matryoshka,
            dtype=resolved_dtype,
            num_labels=num_labels,
            score_activation="sigmoid" if score_token_ids else _score_activation(top, st_info, config_file),
            score_token_ids=score_token_ids,
            quantization=quantization,
        )


def _embedding_dim(pooled_dim: int, spec: ModelSpec, st_info: SentenceTransformersInfo, model_path: str) -> int:
    """The vector's size: the pooled hidden state's, or the last sentence-transformers Dense module's output."""
    if not st_info.dense:
        return pooled_dim
    if spec.default_pooling == "model":
        raise ModelConfigError(f"{model_path}: Dense modules after a model that pools itself are not implemented")
    size = pooled_dim
    for dense in st_info.dense:
        if dense.in_features != size:
            raise ModelConfigError(
                f"{dense.path}: the Dense module takes {dense.in_features} features, but its input has {size}"
            )
        size = dense.out_features
    return size


def _score_token_ids(spec: ModelSpec, top: _TopLevel, model_path: str, config_file: Path) -> tuple[int, ...]:
    """A Qwen3-Reranker's ("no", "yes") ids; only the original reranker's LM head is served, not a trained score head."""
    if spec.pair_format != "qwen3_reranker":
        return ()
    tokens = top.classifier_from_token
    if not top.is_original_qwen3_reranker or not tokens or len(tokens) != 2:
        raise ModelConfigError(
            f"{config_file}: a Qwen3ForSequenceClassification is served only as the original Qwen3-Reranker "
            '(a Qwen3ForCausalLM with the overrides {"classifier_from_token": ["no", "yes"], '
            '"is_original_qwen3_reranker": true}, as configs/qwen3-reranker-0.6b.yaml sets them)'
        )
    try:
        return classifier_token_ids(model_path, tokens)
    except ClassifierTokenError as error:
        raise ModelConfigError(str(error)) from None


def _score_activation(top: _TopLevel, st_info: SentenceTransformersInfo, config_file: Path) -> str:
    """sentence-transformers' choice, in its order: config_sentence_transformers.json's activation_fn, then
    config.json's (current key, then the pre-4.0 one), then sigmoid for one label."""
    path = st_info.activation_fn or (top.sentence_transformers or {}).get("activation_fn")
    path = path or top.sbert_ce_default_activation_function
    if path is None:
        return "sigmoid"
    if path not in SCORE_ACTIVATIONS:
        raise ModelConfigError(
            f"{config_file.parent}: the cross-encoder's activation {path!r} is not implemented "
            f"(implemented: {', '.join(SCORE_ACTIVATIONS)})"
        )
    return SCORE_ACTIVATIONS[path]


def check_dtype(dtype: str) -> None:
    """Raises ModelConfigError unless `dtype` is auto or a float type the engine runs."""
    if dtype != "auto" and dtype not in _DTYPES:
        hint = " (for SGLang's `half`, say float16)" if dtype == "half" else ""
        raise ModelConfigError(f"--dtype {dtype!r} is not one of auto, {', '.join(_DTYPES)}{hint}")


QUANTIZATIONS = ("int8",)


def check_quantization(quantization: str | None, device: str | None = None) -> None:
    """Raises ModelConfigError unless `quantization` is none, or int8 on the CPU."""
    if quantization is None:
        return
    if quantization not in QUANTIZATIONS:
        raise ModelConfigError(f"--quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    if device not in (None, "cpu"):
        raise ModelConfigError(f"--quantization {quantization} runs on the CPU only, not on {device}")


def resolve_dtype(dtype: str, device: str) -> str:
    """`auto` is float32 on CPU (exact parity) and bfloat16 on GPU."""
    check_dtype(dtype)
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype
