"""OpenAI's POST /v1/embeddings as a pipeline route: how its body becomes inputs, and how its answer is sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi.responses import Response

from server.http.embedding_pipeline import run_embedding
from server.http.pipeline import ParsedRequest, PipelineRoute, RequestContext
from server.http.protocol import check_dimensions, check_encoding_format, decode_embedding_request, parse_inputs
from server.http.score_pipeline import require_task
from server.inputs.prompts import select_prompt

if TYPE_CHECKING:
    from server.http.app import FrontendState


@dataclass(frozen=True)
class EmbeddingOptions:
    encoding_format: str
    dimensions: int | None
    prompt: str


def parse_embeddings(state: FrontendState, body: bytes) -> ParsedRequest[EmbeddingOptions]:
    require_task(state, "embed")
    req = decode_embedding_request(body)
    encoding_format = check_encoding_format(req.encoding_format)
    dimensions = check_dimensions(req.dimensions, state.model_config)
    items = parse_inputs(req.input, multimodal=state.multimodal is not None)
    prompt = select_prompt(req.prompt_name, state.args.default_prompt_name, state.model_config.st_info)
    return ParsedRequest(items, EmbeddingOptions(encoding_format, dimensions, prompt))


async def answer_embeddings(context: RequestContext, items: list, options: EmbeddingOptions) -> Response:
    outcome = await run_embedding(context, items, options.encoding_format, options.dimensions, options.prompt)
    state = context.state
    headers = outcome.headers(state.engine_info.get("device", state.args.device))
    # The result process serialized the whole body (or the engine's 4xx): sent as it is.
    return Response(outcome.response.body, outcome.response.status, headers, media_type="application/json")


EMBEDDINGS_ROUTE = PipelineRoute("/v1/embeddings", ("POST",), parse_embeddings, answer_embeddings)
