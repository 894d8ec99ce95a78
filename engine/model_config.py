"""The model as the server sees it: HF config plus overrides, pooling, normalization, context length, Matryoshka."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models.registry import ModelSpec, spec_for
from engine.st_config import SentenceTransformersInfo, read_sentence_transformers_info

_DTYPES = ("float32", "float16", "bfloat16")


class ModelConfigError(ValueError):
    """The model folder or the flags describe something we cannot serve; the message says what."""


@dataclass(frozen=True)
class ModelConfig:
    model_path: str
    hf: dict[str, Any]  # config.json merged with --json-model-override-args
    architecture: str
    spec: ModelSpec
    st_info: SentenceTransformersInfo
    pooling: str
    normalize: bool
    context_length: int
    embedding_dim: int
    vocab_size: int
    matryoshka_dimensions: tuple[int, ...] | None  # None with is_matryoshka means any size up to embedding_dim
    is_matryoshka: bool
    dtype: str

    @property
    def head_dims(self) -> set[int]:
        return attention_head_dims(self.hf)

    @classmethod
    def load(
        cls,
        model_path: str,
        overrides: dict[str, Any] | None = None,
        context_length: int | None = None,
        dtype: str = "auto",
        device: str = "cpu",
    ) -> ModelConfig:
        config_file = Path(model_path) / "config.json"
        if not config_file.is_file():
            raise ModelConfigError(f"no config.json in model path {model_path!r}")
        hf = json.loads(config_file.read_text(encoding="utf-8"))
        hf.update(overrides or {})
        architectures = hf.get("architectures") or []
        if not architectures:
            raise ModelConfigError(f"{config_file} names no architectures")
        architecture = architectures[0]
        spec = spec_for(architecture)
        st_info = read_sentence_transformers_info(model_path)
        pooling = st_info.pooling or spec.default_pooling
        normalize = st_info.normalize if st_info.normalize is not None else spec.default_normalize
        # multimodal configs (CLIP, transformers 5's Qwen2-VL) keep the language model's sizes in text_config
        text = {**hf, **(hf.get("text_config") or {})}
        max_positions = int(text.get("max_position_embeddings", 0)) - spec.position_offset
        if spec.check_config is not None:
            try:
                limit = spec.check_config(hf)
            except ValueError as error:
                raise ModelConfigError(f"{config_file}: {error}") from None
            if limit and (max_positions <= 0 or limit < max_positions):
                max_positions = limit
        natural_length = st_info.max_seq_length or max_positions
        if max_positions > 0:
            natural_length = min(natural_length, max_positions)
        if context_length is not None:
            if context_length < 1 or (max_positions > 0 and context_length > max_positions):
                raise ModelConfigError(
                    f"--context-length {context_length} is outside 1..{max_positions}, the model's positions"
                )
            natural_length = context_length
        embedding_dim = int(hf.get("projection_dim") or text["hidden_size"])
        dims = hf.get("matryoshka_dimensions")
        matryoshka = tuple(sorted(int(d) for d in dims)) if dims else None
        if matryoshka and (matryoshka[0] < 1 or matryoshka[-1] > embedding_dim):
            raise ModelConfigError(f"matryoshka_dimensions {list(matryoshka)} must lie in 1..{embedding_dim}")
        return cls(
            model_path=str(model_path),
            hf=hf,
            architecture=architecture,
            spec=spec,
            st_info=st_info,
            pooling=pooling,
            normalize=bool(normalize),
            context_length=int(natural_length),
            embedding_dim=embedding_dim,
            vocab_size=int(text["vocab_size"]),
            matryoshka_dimensions=matryoshka,
            is_matryoshka=bool(matryoshka) or bool(hf.get("is_matryoshka")),
            dtype=resolve_dtype(dtype, device),
        )


def attention_head_dims(hf: dict[str, Any]) -> set[int]:
    """Head sizes of every attention stack in the config, nested towers (text_config, vision_config) included."""
    dims = set()
    if hf.get("num_attention_heads"):
        dims.add(int(hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]))
    elif hf.get("num_heads") and hf.get("embed_dim"):  # Qwen2-VL's vision tower names them so
        dims.add(int(hf["embed_dim"]) // int(hf["num_heads"]))
    for value in hf.values():
        if isinstance(value, dict):
            dims |= attention_head_dims(value)
    return dims


def resolve_dtype(dtype: str, device: str) -> str:
    """`auto` is float32 on CPU (exact parity) and bfloat16 on GPU."""
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype == "half":
        return "float16"
    if dtype not in _DTYPES:
        raise ModelConfigError(f"--dtype {dtype!r} is not one of auto, {', '.join(_DTYPES)}")
    return dtype
