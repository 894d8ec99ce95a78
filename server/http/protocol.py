"""The /v1/embeddings request: decoding, and validation of every field into clear 400 errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from engine.model_config import ModelConfig
from server.http.errors import APIError

ENCODING_FORMATS = ("float", "base64")
T = TypeVar("T")


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    input: Any
    model: str | None = None
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None
    prompt_name: str | None = None  # a sentence-transformers prompt of the model, prepended to each text


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    return decode_request(body, EmbeddingRequest)


def decode_request(body: bytes, request_type: type[T]) -> T:
    """A JSON body as `request_type`; malformed JSON or a mistyped field is a 400 naming the field."""
    try:
        return msgspec.json.decode(body, type=request_type)
    except msgspec.ValidationError as error:
        param = str(error).rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in str(error) else None
        raise APIError(f"invalid request: {error}", param=param) from None
    except msgspec.DecodeError as error:
        raise APIError(f"request body is not valid JSON: {error}") from None
    except RecursionError:  # msgspec's decoder bounds nesting depth (about a thousand levels)
        raise APIError("request body is nested too deeply", param="input") from None


@dataclass(frozen=True)
class MultimodalItem:
    """SGLang's multimodal input item: a text, an image (URL, data URI, base64 or path), or both."""

    text: str | None
    image: str | None


def _is_token_id(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_inputs(value: Any, multimodal: bool = False) -> list[str | list[int] | MultimodalItem]:
    """Each item of `input` as a text, a token-id list or (multimodal models) a MultimodalItem.

    Every malformed shape is a 400 naming the item.
    """
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list):
        if not value:
            raise APIError("input must not be an empty list", param="input")
        # a flat list of ints is one input given as token ids
        items = [value] if all(_is_token_id(x) for x in value) else value
    else:
        raise APIError("input must be a string, a list of strings, or token ids", param="input")
    for index, item in enumerate(items):
        where = "input" if len(items) == 1 and not isinstance(value, list) else f"input[{index}]"
        if isinstance(item, str):
            if not item.strip():
                raise APIError(f"{where} is empty or only whitespace", param="input")
        elif isinstance(item, list):
            if not item:
                raise APIError(f"{where} is an empty token-id list", param="input")
            if not all(_is_token_id(t) for t in item):
                raise APIError(f"{where} must be a list of integer token ids", param="input")
        elif isinstance(item, dict):
            if not multimodal:
                raise APIError(f"{where}: this model takes text or token ids, not multimodal items", param="input")
            items = items if items is not value else list(value)
            items[index] = _multimodal_item(where, item)
        else:
            raise APIError(
                f"{where} has type {type(item).__name__}; expected a string or a list of token ids", param="input"
            )
    return items


def _multimodal_item(where: str, item: dict) -> MultimodalItem:
    unknown = sorted(set(item) - {"text", "image"})
    if unknown:
        raise APIError(f"{where} has unknown field(s) {unknown}; an item takes 'text' and/or 'image'", param="input")
    text, image = item.get("text"), item.get("image")
    if text is None and image is None:
        raise APIError(f"{where} needs a 'text' or an 'image'", param="input")
    for name, field in (("text", text), ("image", image)):
        if field is not None and not isinstance(field, str):
            raise APIError(f"{where}.{name} must be a string, not {type(field).__name__}", param="input")
        if field is not None and not field.strip():
            raise APIError(f"{where}.{name} is empty or only whitespace", param="input")
    return MultimodalItem(text, image)


def check_encoding_format(value: str | None) -> str:
    fmt = value or "float"
    if fmt not in ENCODING_FORMATS:
        raise APIError(f"encoding_format must be 'float' or 'base64', not {fmt!r}", param="encoding_format")
    return fmt


def check_dimensions(dimensions: int | None, config: ModelConfig) -> int | None:
    """Matryoshka rules: only on Matryoshka models, at least 1, within the listed sizes, at most the vector size."""
    if dimensions is None:
        return None
    if not config.is_matryoshka:
        raise APIError("this model does not support Matryoshka embeddings; omit dimensions", param="dimensions")
    if dimensions < 1:
        raise APIError(f"dimensions must be at least 1, got {dimensions}", param="dimensions")
    if dimensions > config.embedding_dim:
        raise APIError(
            f"dimensions {dimensions} exceeds the model's embedding size {config.embedding_dim}", param="dimensions"
        )
    allowed = config.matryoshka_dimensions
    if allowed and dimensions not in allowed:
        raise APIError(f"dimensions {dimensions} is not supported; allowed values: {list(allowed)}", param="dimensions")
    return dimensions
