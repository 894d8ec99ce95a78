"""One embedding request from checked inputs to the engine's answer, timed phase by phase for headers, metrics, logs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from processes.messages import EmbedResponse, ImageData
from server.http.errors import internal_error
from server.http.protocol import MultimodalItem
from server.inputs.tokenizer_manager import TokenizedInputs, TokenizerManager

if TYPE_CHECKING:
    from server.http.engine_client import EngineClient
    from server.http.pipeline import RequestContext
    from server.inputs.multimodal import MultimodalProcessor

# Tokenizing this many characters inline would stall the event loop; larger requests go to a thread.
INLINE_TOKENIZE_CHARS = 4096


def count_chars(items: list[str | list[int]]) -> int:
    return sum(len(i) for i in items if isinstance(i, str))


async def tokenize_items(
    tokenizer: TokenizerManager, items: list[str | list[int]], prompt: str = ""
) -> TokenizedInputs:
    if count_chars(items) > INLINE_TOKENIZE_CHARS:
        return await asyncio.to_thread(tokenizer.tokenize, items, prompt)
    return tokenizer.tokenize(items, prompt)


async def prepare_inputs(
    tokenizer: TokenizerManager,
    multimodal: MultimodalProcessor | None,
    items: list,
    prompt: str,
    reserve_tokens: Callable[[int], None],
) -> tuple[TokenizedInputs, list[ImageData] | None]:
    """Token ids for every item, and the preprocessed images when a multimodal item is present.

    `reserve_tokens(total)` sets the request's whole share of the admission budget (Ticket.reserve: 429 or
    413 past it), so admission counts real tokens instead of body bytes from here on; image loading calls it
    as each image's cost becomes known, before its pixels are decoded (CLIP: before its bytes are fetched).
    """
    if multimodal is not None and any(isinstance(i, MultimodalItem) for i in items):
        tokens, images = await multimodal.prepare(items, reserve_tokens)
        # the final share: the ids plus CLIP's image positions, which travel beside them
        reserve_tokens(tokens.num_tokens + sum(image.num_tokens for image in images))
        return tokens, images
    tokens = await tokenize_items(tokenizer, items, prompt)
    reserve_tokens(tokens.num_tokens)
    return tokens, None


@dataclass(frozen=True)
class EmbedTiming:
    """Seconds spent in each phase of one request, named as text-embeddings-inference names them."""

    total: float  # from the handler's start to the engine's answer
    tokenization: float  # validation and tokenization, until the request is sent to the scheduler
    queue: float  # waiting for the first forward pass
    inference: float  # first forward's start to last forward's end


@dataclass(frozen=True)
class EmbedOutcome:
    rid: str
    response: EmbedResponse
    tokens: TokenizedInputs
    num_chars: int
    timing: EmbedTiming

    def headers(self, device: str) -> dict[str, str]:
        """TEI's response headers: whole milliseconds, as TEI sends them, plus the sizes it reports."""
        t = self.timing
        return {
            "x-request-id": self.rid,
            "x-compute-type": device,
            "x-compute-characters": str(self.num_chars),
            "x-compute-tokens": str(self.tokens.num_tokens),
            "x-total-time": str(int(t.total * 1e3)),
            "x-tokenization-time": str(int(t.tokenization * 1e3)),
            "x-queue-time": str(int(t.queue * 1e3)),
            "x-inference-time": str(int(t.inference * 1e3)),
        }


async def embed_items(
    tokenizer: TokenizerManager,
    multimodal: MultimodalProcessor | None,
    engine: EngineClient,
    rid: str,
    items: list,
    encoding_format: str,
    dimensions: int | None,
    prompt: str = "",
    reserve_tokens: Callable[[int], None] = lambda num_tokens: None,
    started: float | None = None,
) -> EmbedOutcome:
    """Tokenize `items` (and load their images), embed them, and time each phase; any frontend's core path."""
    started = time.perf_counter() if started is None else started
    tokens, images = await prepare_inputs(tokenizer, multimodal, items, prompt, reserve_tokens)
    return await embed_tokens(engine, rid, tokens, images, count_chars(items), encoding_format, dimensions, started)


async def embed_tokens(
    engine: EngineClient,
    rid: str,
    tokens: TokenizedInputs,
    images: list[ImageData] | None,
    num_chars: int,
    encoding_format: str,
    dimensions: int | None,
    started: float,
    task: str = "embed",
) -> EmbedOutcome:
    """Send tokenized inputs to the engine and time each phase since `started`."""
    tokenized = time.perf_counter()
    response = await engine.embed(rid, tokens, encoding_format, dimensions, images, task)
    timing = EmbedTiming(
        total=time.perf_counter() - started,
        tokenization=tokenized - started,
        queue=response.queue_time,
        inference=response.inference_time,
    )
    return EmbedOutcome(rid, response, tokens, num_chars, timing)


async def run_embedding(
    context: RequestContext, items: list, encoding_format: str, dimensions: int | None, prompt: str = ""
) -> EmbedOutcome:
    """Tokenize `items`, embed them, and record the request in the metrics and the request log's fields."""
    state = context.state
    tokens, images = await prepare_inputs(state.tokenizer, state.multimodal, items, prompt, context.ticket.reserve)
    return await run_engine(context, tokens, images, count_chars(items), encoding_format, dimensions)


async def run_engine(
    context: RequestContext,
    tokens: TokenizedInputs,
    images: list[ImageData] | None,
    num_chars: int,
    encoding_format: str,
    dimensions: int | None,
    task: str = "embed",
) -> EmbedOutcome:
    """Send tokenized inputs to the engine; record the request in the metrics and the request log's fields."""
    state = context.state
    outcome = await embed_tokens(
        state.engine, context.rid, tokens, images, num_chars, encoding_format, dimensions, context.started, task
    )
    response, timing = outcome.response, outcome.timing
    if response.status == 200:
        state.metrics.observe_request(
            len(tokens.seq_lens), tokens.num_tokens, timing.tokenization, timing.queue, timing.inference
        )
    context.log_fields.update(
        inputs=len(tokens.seq_lens),
        tokens=tokens.num_tokens,
        chars=outcome.num_chars,
        dimensions=dimensions or "full",
        tokenize_ms=f"{timing.tokenization * 1e3:.2f}",
        queue_ms=f"{timing.queue * 1e3:.2f}",
        inference_ms=f"{timing.inference * 1e3:.2f}",
    )
    if response.status >= 500:
        # The engine's message names the exception; the client gets the request id, the log the message.
        raise internal_error(context.rid, "the engine", engine_error_message(response.body))
    return outcome


def engine_error_message(body: bytes) -> str:
    try:
        return str(msgspec.json.decode(body)["error"]["message"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return repr(body[:1000])
