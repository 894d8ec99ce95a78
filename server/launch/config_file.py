"""--config FILE.yaml: ServerArgs fields from a YAML mapping, type-checked, as defaults the command line overrides."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from server.launch.args import ServerArgs, ServerArgsError


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The file's options keyed by ServerArgs field name; keys may be spelled with dashes, as on the command line."""
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
    fields = {f.name: f for f in dataclasses.fields(ServerArgs) if f.name != "config"}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ServerArgsError(f"--config {path}: unknown option {key!r}; options are the flag names")
        values[name] = _checked(name, str(fields[name].type), value, path)
    return values


def _checked(name: str, annotation: str, value: Any, path: str | Path) -> Any:
    """The value as the field takes it, or a ServerArgsError naming the option and the type it wants."""
    optional = annotation.endswith("| None")
    kind = annotation.removesuffix("| None").strip()
    if value is None:
        if optional:
            return None
        raise ServerArgsError(f"--config {path}: {name} cannot be empty")
    if name == "json_model_override_args" and isinstance(value, dict):
        return json.dumps(value)  # a YAML mapping reads better than a JSON string inside YAML
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = {
        "bool": isinstance(value, bool),
        "int": is_int,
        "float": is_int or isinstance(value, float),
        "str": isinstance(value, str),
    }.get(kind, True)  # a field type this loader does not know is passed through for ServerArgs to check
    if not ok:
        raise ServerArgsError(f"--config {path}: {name} must be {kind}, not {type(value).__name__} {value!r}")
    return float(value) if kind == "float" else value
