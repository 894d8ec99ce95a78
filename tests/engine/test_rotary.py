"""Rotary settings: our frequencies equal transformers' for each rope type we serve; other types fail at startup."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from engine.arch_config import DecoderConfig
from engine.layers.rotary import scaled_inverse_frequencies
from engine.model_config import ModelConfig, ModelConfigError

_SHAPE = {"hidden_size": 256, "num_attention_heads": 4, "head_dim": 64, "max_position_embeddings": 4096}
_SIZES = {"num_hidden_layers": 1, "intermediate_size": 512, "vocab_size": 100}
_LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 512}


def _our_frequencies(hf: dict) -> torch.Tensor:
    text = DecoderConfig.from_hf({**_SIZES, **hf})
    return scaled_inverse_frequencies(text.head_dim, text.rope)


def _transformers_frequencies(rope_parameters: dict) -> torch.Tensor:
    config = LlamaConfig(**_SHAPE, rope_parameters=rope_parameters)
    rope_type = rope_parameters["rope_type"]
    init = ROPE_INIT_FUNCTIONS[rope_type] if rope_type != "default" else None
    if init is None:
        dim = _SHAPE["head_dim"]
        base = rope_parameters["rope_theta"]
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    inv_freq, attention_scaling = init(config, "cpu")
    assert attention_scaling == 1.0
    return inv_freq


@pytest.mark.parametrize(
    "rope_parameters",
    [
        {"rope_type": "default", "rope_theta": 1_000_000.0},
        {"rope_type": "linear", "rope_theta": 10_000.0, "factor": 4.0},
        {"rope_type": "llama3", "rope_theta": 500_000.0, **_LLAMA3},
    ],
    ids=lambda p: p["rope_type"],
)
def test_frequencies_equal_transformers_in_both_spellings(rope_parameters):
    expected = _transformers_frequencies(rope_parameters)
    new_style = {**_SHAPE, "rope_parameters": rope_parameters}
    scaling = {k: v for k, v in rope_parameters.items() if k != "rope_theta"}
    old_style = {**_SHAPE, "rope_theta": rope_parameters["rope_theta"], "rope_scaling": scaling}
    if scaling["rope_type"] == "default":
        old_style["rope_scaling"] = None
    for hf in (new_style, old_style):
        torch.testing.assert_close(_our_frequencies(hf), expected, rtol=0, atol=0)


def test_scaled_types_really_change_frequencies():
    default = _our_frequencies({**_SHAPE, "rope_theta": 500_000.0})
    llama3 = _our_frequencies({**_SHAPE, "rope_theta": 500_000.0, "rope_scaling": {"rope_type": "llama3", **_LLAMA3}})
    changed = (default != llama3).sum().item()
    assert 0 < changed < len(default), "llama3 keeps high frequencies and rescales low ones"


def _folder_with(tmp_path, tiny_path, **changes) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    config = json.loads((tiny_path / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.mark.parametrize("rope_type", ["yarn", "dynamic", "longrope", "ntk-by-parts"])
def test_unimplemented_rope_type_is_a_startup_error(rope_type, tmp_path, tiny_decoder):
    from pathlib import Path

    path = _folder_with(
        tmp_path, Path(tiny_decoder("mistral-base-sharded")), rope_parameters={"rope_type": rope_type, "factor": 4.0}
    )
    with pytest.raises(ModelConfigError, match=f"rope type '{rope_type}' is not implemented"):
        ModelConfig.load(path)


def test_incomplete_rope_scaling_is_a_startup_error(tmp_path, tiny_decoder):
    from pathlib import Path

    path = _folder_with(
        tmp_path, Path(tiny_decoder("mistral-base-sharded")), rope_scaling={"type": "llama3", "factor": 8.0}
    )
    with pytest.raises(ModelConfigError, match="needs 'low_freq_factor'"):
        ModelConfig.load(path)
