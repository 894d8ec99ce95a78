"""What a request must pass before costly work: the server-wide bound on requests and tokens admitted at once
(429 with Retry-After past it), the body size (413), inputs per request and characters per input."""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.requests import ClientDisconnect

from server.http.errors import APIError
from server.http.protocol import MultimodalItem

# Seconds a rejected client should wait: about one forward pass of a full batch, rounded up.
RETRY_AFTER_SECONDS = 1


class Admission:
    """Counts admitted requests and the tokens they reserve; `admit()` hands out a ticket or refuses."""

    def __init__(self, max_queued_requests: int, max_queued_tokens: int):
        self.max_queued_requests = max_queued_requests
        self.max_queued_tokens = max_queued_tokens
        self.num_requests = 0
        self.num_tokens = 0
        self.closed_reason: str | None = None  # set when the server stops accepting (shutdown)
        self._idle: asyncio.Event | None = None

    @property
    def is_full(self) -> bool:
        return self.num_requests >= self.max_queued_requests or self.num_tokens >= self.max_queued_tokens

    def admit(self) -> Ticket:
        if self.closed_reason is not None:
            raise APIError(self.closed_reason, status=503, headers={"Connection": "close"})
        if self.num_requests >= self.max_queued_requests:
            raise overloaded(f"the server is at its limit of {self.max_queued_requests} queued requests")
        self.num_requests += 1
        if self._idle is not None:
            self._idle.clear()
        return Ticket(self)

    def close(self, reason: str) -> None:
        """Refuse every new request with a 503 from now on; admitted ones carry on."""
        self.closed_reason = reason

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is admitted; False when `timeout` passed first."""
        if self.num_requests == 0:
            return True
        if self._idle is None:
            self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _release(self, tokens: int) -> None:
        self.num_requests -= 1
        self.num_tokens -= tokens
        if self.num_requests == 0 and self._idle is not None:
            self._idle.set()


class Ticket:
    """One admitted request; `reserve(n)` sets its share of the token budget. Use it as a context manager."""

    def __init__(self, admission: Admission):
        self._admission = admission
        self.tokens = 0

    def reserve(self, tokens: int) -> None:
        admission = self._admission
        growth = tokens - self.tokens
        if growth > 0 and admission.num_tokens + growth > admission.max_queued_tokens:
            if tokens > admission.max_queued_tokens:  # could never fit, so retrying cannot help
                raise APIError(
                    f"the request needs {tokens} tokens of queue space, more than the server's "
                    f"--max-queued-tokens of {admission.max_queued_tokens}; split it into smaller requests",
                    status=413,
                    param="input",
                )
            raise overloaded(f"the server is at its limit of {admission.max_queued_tokens} queued tokens")
        admission.num_tokens += growth
        self.tokens = tokens

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc_info) -> None:
        self._admission._release(self.tokens)
        self.tokens = 0


def overloaded(message: str) -> APIError:
    return APIError(
        f"{message}; retry after {RETRY_AFTER_SECONDS}s", status=429, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


# Per-request limits, checked before any costly work.


class ClientDisconnected(Exception):
    """The client closed its connection before we answered; nobody is left to read a response."""


def _too_large(size_text: str, max_request_bytes: int) -> APIError:
    return APIError(
        f"request body is {size_text} bytes, more than the limit of {max_request_bytes} (--max-request-bytes)",
        status=413,
    )


async def read_body(request: Request, max_request_bytes: int, ticket: Ticket) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `max_request_bytes`.

    The body's size is reserved in the token budget while it is read (a body is never smaller than
    its token count by much), so a burst of large bodies is bounded before anything is decoded.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        if int(declared) > max_request_bytes:
            raise _too_large(declared, max_request_bytes)
        ticket.reserve(int(declared))
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_request_bytes:
                raise _too_large(f"over {max_request_bytes}", max_request_bytes)
            if len(body) > ticket.tokens:
                ticket.reserve(len(body))
    except ClientDisconnect:
        raise ClientDisconnected from None
    return bytes(body)


def check_input_sizes(items: list, max_inputs_per_request: int, max_input_chars: int, name: str = "input") -> None:
    """--max-inputs-per-request over the items, --max-input-chars over each text (a multimodal item's too).

    `name` is the request field the items came from, as errors call it.
    """
    if len(items) > max_inputs_per_request:
        raise APIError(
            f"{name} has {len(items)} items, more than the limit of {max_inputs_per_request} (--max-inputs-per-request)",
            param=name,
        )
    for index, item in enumerate(items):
        text = item.text if isinstance(item, MultimodalItem) else item
        check_text_length(text, max_input_chars, f"{name}[{index}]", name)


def check_text_length(text: object, max_chars: int, where: str, param: str) -> None:
    """--max-input-chars over one text; `where` names it in the error."""
    if isinstance(text, str) and len(text) > max_chars:
        raise APIError(
            f"{where} has {len(text)} characters, more than the limit of {max_chars} (--max-input-chars)", param=param
        )
