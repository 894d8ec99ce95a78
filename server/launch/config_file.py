"""--config FILE.yaml: ServerArgs options from a YAML mapping, typed like the flags, under the command line's flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from server.launch.args import ServerArgsError, typed_options


def load_config_file(path: str) -> dict[str, Any]:
    """The file's options keyed by ServerArgs field name, typed; keys may be spelled with dashes, as on the command line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ServerArgsError(f"--config {path}: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ServerArgsError(f"--config {path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ServerArgsError(f"--config {path} must be a mapping of option names to values")
    values = {str(key).replace("-", "_"): value for key, value in data.items()}
    if len(values) < len(data):
        raise ServerArgsError(f"--config {path} names an option twice, with dashes and with underscores")
    for name in ("json_model_override_args", "mm_processor_kwargs"):
        if isinstance(values.get(name), dict):
            values[name] = json.dumps(values[name])  # a YAML mapping reads better than JSON in YAML
    return typed_options(values, config_path=path)
