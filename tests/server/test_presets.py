"""Every preset in configs/ is a valid ServerArgs and is documented in docs/models.md."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from server.launch.args import ServerArgs
from server.launch.config_file import load_config_file

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs").glob("*.yaml"))


def test_there_is_a_preset_per_seed_model():
    names = {p.stem for p in PRESETS}
    assert {"Qwen3-Embedding-0.6B", "Qwen3-Embedding-4B", "Qwen3-Embedding-8B", "gte-Qwen2-7B-instruct",
            "e5-mistral-7b-instruct", "all-minilm-l6-v2", "bge-large-en-v1.5", "gme-qwen2-vl-2b-instruct",
            "clip-vit-large-patch14-336"} <= names  # fmt: skip


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_keys_are_server_args_fields(preset):
    values = yaml.safe_load(preset.read_text())
    assert set(values) <= {f.name for f in dataclasses.fields(ServerArgs)}
    ServerArgs(**load_config_file(preset))  # as --config reads it: typed, mappings to JSON, validated
    assert f"configs/{preset.name}" in (REPO / "docs" / "models.md").read_text()
