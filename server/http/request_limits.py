"""Per-request limits checked before any costly work: body size (413), inputs per request, characters per input."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect

from server.http.admission import Ticket
from server.http.errors import APIError
from server.http.protocol import MultimodalItem


class ClientDisconnected(Exception):
    """The client closed its connection before we answered; nobody is left to read a response."""


def _too_large(size_text: str, max_bytes: int) -> APIError:
    return APIError(
        f"request body is {size_text} bytes, more than the limit of {max_bytes} (--max-request-bytes)", status=413
    )


async def read_body(request: Request, max_bytes: int, ticket: Ticket) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `max_bytes`.

    The body's size is reserved in the token budget while it is read (a body is never smaller than
    its token count by much), so a burst of large bodies is bounded before anything is decoded.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        if int(declared) > max_bytes:
            raise _too_large(declared, max_bytes)
        ticket.reserve(int(declared))
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise _too_large(f"over {max_bytes}", max_bytes)
            if len(body) > ticket.tokens:
                ticket.reserve(len(body))
    except ClientDisconnect:
        raise ClientDisconnected from None
    return bytes(body)


def check_input_sizes(items: list, max_inputs: int, max_chars: int) -> None:
    """--max-inputs-per-request over the items, --max-input-chars over each text (a multimodal item's too)."""
    if len(items) > max_inputs:
        raise APIError(
            f"input has {len(items)} items, more than the limit of {max_inputs} (--max-inputs-per-request)",
            param="input",
        )
    for index, item in enumerate(items):
        text = item.text if isinstance(item, MultimodalItem) else item
        if isinstance(text, str) and len(text) > max_chars:
            raise APIError(
                f"input[{index}] has {len(text)} characters, more than the limit of {max_chars} (--max-input-chars)",
                param="input",
            )
