"""Reads a decoder's rotary settings from config.json (transformers 4 or 5 spelling) and rejects kinds we lack."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Rope types whose frequencies we compute; any other type is refused at startup rather than served wrong.
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


class RopeConfigError(ValueError):
    """config.json asks for a rotary embedding this server does not implement."""


@dataclass(frozen=True)
class RopeConfig:
    head_dim: int
    theta: float
    rope_type: str = "default"
    factor: float = 1.0  # linear and llama3
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    original_max_position_embeddings: int = 8192  # llama3


def decoder_head_dim(hf: dict[str, Any]) -> int:
    """Qwen3 and newer Llama/Mistral configs set head_dim explicitly (it need not be hidden / heads)."""
    return int(hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"])


def read_rope_config(hf: dict[str, Any]) -> RopeConfig:
    """Hub folders (transformers 4) write rope_theta and rope_scaling; transformers 5 writes rope_parameters.

    When both are present, rope_scaling wins: it is what `--json-model-override-args` users write.
    """
    params = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    if "type" in scaling:  # the older spelling of rope_type
        scaling["rope_type"] = scaling.pop("type")
    params.update(scaling)
    if params and all(isinstance(v, dict) for v in params.values()):
        raise RopeConfigError(f"per-layer-type rope_parameters {sorted(params)} are not supported")
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    rope_type = str(params.get("rope_type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise RopeConfigError(
            f"rope type {rope_type!r} is not implemented (supported: {', '.join(SUPPORTED_ROPE_TYPES)}); "
            "serving it would give wrong vectors"
        )
    partial = float(params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)))
    if partial != 1.0:
        raise RopeConfigError(f"partial_rotary_factor {partial} is not supported (only 1.0)")
    try:
        return _scaled(RopeConfig(decoder_head_dim(hf), theta, rope_type), params)
    except KeyError as missing:
        raise RopeConfigError(f"rope type {rope_type!r} needs {missing} in rope_scaling/rope_parameters") from None


def _scaled(config: RopeConfig, params: dict[str, Any]) -> RopeConfig:
    if config.rope_type == "linear":
        return replace(config, factor=float(params["factor"]))
    if config.rope_type == "llama3":
        return replace(
            config,
            factor=float(params["factor"]),
            low_freq_factor=float(params["low_freq_factor"]),
            high_freq_factor=float(params["high_freq_factor"]),
            original_max_position_embeddings=int(params["original_max_position_embeddings"]),
        )
    return config
