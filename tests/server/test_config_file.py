"""--config FILE.yaml: every option from a file, command-line flags winning; the presets in configs/ load and serve."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from server.launch.args import ServerArgsError
from server.launch.cli import parse_serve_args
from tests.support.launch import PRESETS


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "server.yaml"
    path.write_text(text)
    return str(path)


def test_file_values_become_the_options(tmp_path):
    path = write(
        tmp_path,
        "model-path: /models/x\n"  # dashed keys, as on the command line, are accepted
        "served_model_name: x\n"
        "allow_auto_truncate: true\n"
        "max_prefill_tokens: 4096\n"
        "child_death_exit_delay: 1\n"
        "json_model_override_args: {matryoshka_dimensions: [64, 128]}\n",
    )
    args = parse_serve_args(["--config", path])
    assert (args.model_path, args.served_model_name, args.allow_auto_truncate) == ("/models/x", "x", True)
    assert args.max_prefill_tokens == 4096 and args.child_death_exit_delay == 1.0
    assert args.model_overrides() == {"matryoshka_dimensions": [64, 128]}  # a YAML mapping becomes the JSON string
    assert args.config == path


def test_command_line_flags_win_over_the_file(tmp_path):
    path = write(tmp_path, "served_model_name: from-file\nallow_auto_truncate: true\nport: 1234\n")
    args = parse_serve_args(["--port", "4321", "--config", path, "--no-allow-auto-truncate"])
    assert args.port == 4321 and args.allow_auto_truncate is False
    assert args.served_model_name == "from-file"  # what the command line leaves alone comes from the file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_prefill_token: 10\n", "unknown option 'max_prefill_token'"),
        ("port: '8080'\n", "port must be int"),
        ("allow_auto_truncate: 'yes please'\n", "allow_auto_truncate must be bool"),
        ("- port\n", "must be a mapping"),
        ("port: [1\n", "not valid YAML"),
        ("config: other.yaml\n", "unknown option 'config'"),
        ("port: 70000\n", "not a valid port"),  # values still pass ServerArgs' own checks
    ],
)
def test_bad_files_are_clear_errors(tmp_path, text, message):
    with pytest.raises(ServerArgsError, match=message):
        parse_serve_args(["--config", write(tmp_path, text)])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ServerArgsError, match="No such file"):
        parse_serve_args(["--config", str(tmp_path / "absent.yaml")])


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(preset):
    options = yaml.safe_load(preset.read_text())
    args = parse_serve_args(["--config", str(preset)])
    assert args.is_embedding is True
    for key, value in options.items():
        json_options = ("json_model_override_args", "mm_processor_kwargs")
        expected = json.dumps(value) if key in json_options and isinstance(value, dict) else value
        assert getattr(args, key.replace("-", "_")) == expected


def test_the_default_preset_serves_with_a_flag_overriding_it(preset_server, minilm):
    preset = PRESETS / "all-minilm-l6-v2.yaml"
    options = yaml.safe_load(preset.read_text())
    info = httpx.get(f"{preset_server.base_url}/get_server_info").json()
    assert info["config"] == str(preset)
    assert options["served_model_name"] == "all-MiniLM-L6-v2" and info["served_model_name"] == "from-cli"
    for key, value in options.items():
        if key != "served_model_name":
            assert info[key] == value, key  # is_embedding, for one, is set only by the file
    assert info["model_path"] == minilm  # the preset leaves model_path out: the embedded default
    models = httpx.get(f"{preset_server.base_url}/v1/models").json()
    assert models["data"][0]["id"] == "from-cli"
    body = {"input": "hello", "encoding_format": "float"}
    response = httpx.post(f"{preset_server.base_url}/v1/embeddings", json=body, timeout=30)
    assert response.status_code == 200 and response.json()["model"] == "from-cli"
