"""--mm-processor-kwargs (vLLM's flag): image processor settings over the model folder's, checked at startup."""

from __future__ import annotations

from typing import Any

import msgspec

from server.launch.arg_rules import ServerArgsError


class ImageProcessorKwargs(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The settings the flag may change: Qwen2-VL's pixel budget per image (smart_resize's bounds)."""

    min_pixels: int | None = None
    max_pixels: int | None = None


ACCEPTED_KEYS = ", ".join(ImageProcessorKwargs.__struct_fields__)


def parse_mm_processor_kwargs(text: str) -> dict[str, Any]:
    """The flag's JSON object as keyword arguments for the image processor; a ServerArgsError naming the flag."""
    try:
        kwargs = msgspec.json.decode(text or "{}", type=ImageProcessorKwargs)
    except msgspec.DecodeError as error:  # ValidationError included: unknown keys, wrong types, not an object
        raise ServerArgsError(f"--mm-processor-kwargs: {error} (accepted keys: {ACCEPTED_KEYS})") from None
    values = msgspec.structs.asdict(kwargs)
    values = {key: value for key, value in values.items() if value is not None}
    for key, value in values.items():
        if value < 1:
            raise ServerArgsError(f"--mm-processor-kwargs: {key} must be positive, not {value}")
    if values.get("min_pixels", 0) > values.get("max_pixels", float("inf")):
        raise ServerArgsError("--mm-processor-kwargs: min_pixels must not exceed max_pixels")
    return values
