"""Every rule a ServerArgs keeps beyond its field types, checked in one place: ranges, names, rules across flags."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.backend_names import BACKEND_NAMES
from engine.model_config import check_dtype, check_quantization
from server.launch.api_key import resolve_api_key
from server.launch.topology import check_topology_args

if TYPE_CHECKING:
    from server.launch.args import ServerArgs


class ServerArgsError(ValueError):
    """A flag has a value we cannot use; the message names the flag."""


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_POSITIVE = (
    "max_queued_requests", "max_queued_tokens", "max_request_bytes", "max_inputs_per_request", "max_input_chars",
    "engine_stall_timeout",
    # image URLs, local files and image admission (docs/security.md, "Images and URLs")
    "media_fetch_timeout", "max_media_bytes", "max_image_pixels", "media_workers", "max_images_per_request",
    "max_media_loads_per_request", "max_concurrent_media_loads",
)  # fmt: skip


def flag(name: str) -> str:
    """The command-line spelling of a ServerArgs field."""
    return "--" + name.replace("_", "-")


def validate(args: ServerArgs) -> None:
    """Raises ServerArgsError naming the flag when a value cannot be used; resolves the API key's source."""
    if (args.max_prefill_tokens is not None and args.max_prefill_tokens < 1) or args.max_running_requests < 1:
        raise ServerArgsError("--max-prefill-tokens and --max-running-requests must be at least 1")
    for name in ("context_length", "num_threads"):  # None: the model's length, torch's thread count
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ServerArgsError(f"{flag(name)} must be at least 1")
    if not 0 < args.port < 65536:
        raise ServerArgsError(f"--port {args.port} is not a valid port")
    if args.attention_backend not in BACKEND_NAMES:
        raise ServerArgsError(
            f"--attention-backend {args.attention_backend!r} is not one of {', '.join(BACKEND_NAMES)}"
        )
    if args.log_level.lower() not in LOG_LEVELS:
        raise ServerArgsError(f"--log-level {args.log_level!r} is not a log level")
    for name in _POSITIVE:
        # `not > 0` rather than `<= 0`, so that a float flag given as nan is refused too
        if not getattr(args, name) > 0:
            raise ServerArgsError(f"{flag(name)} must be positive")
    if not args.shutdown_timeout >= 0:
        raise ServerArgsError("--shutdown-timeout must not be negative")
    if args.max_request_bytes > args.max_queued_tokens:
        # a body reserves its size in the token budget until tokenized; a larger one could never be admitted
        raise ServerArgsError("--max-request-bytes must not exceed --max-queued-tokens")
    if args.allowed_media_domains is not None and not args.allowed_media_hosts():
        raise ServerArgsError("--allowed-media-domains names no host")
    args.model_overrides()  # fail at startup on bad JSON
    args.image_processor_kwargs()
    try:
        check_dtype(args.dtype)
        check_quantization(args.quantization)
        check_topology_args(args.tp_size, args.dp_size, args.nnodes, args.node_rank, args.dist_init_addr)
        resolve_api_key(args)
    except ValueError as error:
        raise ServerArgsError(str(error)) from None
