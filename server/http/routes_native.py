"""SGLang's native routes (POST /encode, GET /get_server_info) and vLLM's POST /tokenize, beside OpenAI's.

/encode and /tokenize are pipeline routes (server/http/pipeline.py): here is only how they parse and answer.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from processes.response_encoder import decode_base64_vectors
from server.http.embedding_pipeline import INLINE_TOKENIZE_CHARS, EmbedOutcome, run_embedding
from server.http.errors import APIError
from server.http.pipeline import ParsedRequest, PipelineRoute, RequestContext
from server.http.protocol import MultimodalItem, decode_request, parse_inputs
from server.http.score_pipeline import require_task
from server.launch.api_key import public_options

if TYPE_CHECKING:
    from server.http.app import FrontendState

_json = msgspec.json.Encoder()
# Building a body of more floats than this would hold the event loop for milliseconds: do it in a thread.
_INLINE_BODY_FLOATS = 65536


class EncodeRequest(msgspec.Struct, kw_only=True):
    """SGLang's EmbeddingReqInput, as far as a text model uses it: `text` or `input_ids`, single or a batch."""

    text: Any = None
    input_ids: Any = None
    image_data: Any = None
    rid: Any = None  # accepted and ignored: every request gets its own id


class TokenizeRequest(msgspec.Struct, kw_only=True):
    """vLLM's completion-form /tokenize request."""

    prompt: str | None = None
    model: str | None = None
    add_special_tokens: bool = True
    return_token_strs: bool = False
    messages: Any = None  # the chat form, which an embedding server has no template for


def encode_items(req: EncodeRequest) -> tuple[list[str | list[int] | MultimodalItem], bool]:
    """The inputs of an /encode request and whether it was a single one (answered with an object, not a list)."""
    if req.image_data is not None:
        raise APIError("this model takes text or token ids, not image_data", param="image_data")
    if (req.text is None) == (req.input_ids is None):
        raise APIError("give exactly one of text or input_ids", param="text")
    text = req.text
    if text is not None:
        if not (isinstance(text, str) or (isinstance(text, list) and all(isinstance(t, str) for t in text))):
            raise APIError("text must be a string or a list of strings", param="text")
        return parse_inputs(text), isinstance(text, str)
    ids = req.input_ids
    single = isinstance(ids, list) and bool(ids) and all(isinstance(x, int) and not isinstance(x, bool) for x in ids)
    if not single and not (isinstance(ids, list) and all(isinstance(x, list) for x in ids)):
        raise APIError("input_ids must be a list of token ids or a list of such lists", param="input_ids")
    return parse_inputs(ids), single


def sglang_answer(outcome: EmbedOutcome, single: bool) -> dict | list[dict]:
    """SGLang's /encode answer: {"embedding", "meta_info"} per input; an object for one input, else a list."""
    vectors = decode_base64_vectors(outcome.response.body)
    results = []
    for index, (vector, num_tokens) in enumerate(zip(vectors, outcome.tokens.seq_lens.tolist(), strict=True)):
        meta_info = {
            "id": outcome.rid if single else f"{outcome.rid}-{index}",
            "prompt_tokens": num_tokens,
            "e2e_latency": outcome.timing.total,
            "queue_time": outcome.timing.queue,
            "inference_time": outcome.timing.inference,
        }
        results.append({"embedding": vector.tolist(), "meta_info": meta_info})
    return results[0] if single else results


def sglang_body(outcome: EmbedOutcome, single: bool) -> bytes:
    return _json.encode(sglang_answer(outcome, single))


def parse_encode(state: FrontendState, body: bytes) -> ParsedRequest[bool]:
    require_task(state, "embed")
    items, single = encode_items(decode_request(body, EncodeRequest))
    return ParsedRequest(items, single)


async def answer_encode(context: RequestContext, items: list, single: bool) -> Response:
    # base64 from the result process carries the exact float32 bits; the SGLang body is built here.
    outcome = await run_embedding(context, items, "base64", None)
    state = context.state
    headers = outcome.headers(state.engine_info.get("device", state.args.device))
    if outcome.response.status != 200:
        return Response(outcome.response.body, outcome.response.status, headers, media_type="application/json")
    if len(items) * state.model_config.embedding_dim > _INLINE_BODY_FLOATS:
        body = await asyncio.to_thread(sglang_body, outcome, single)
    else:
        body = sglang_body(outcome, single)
    return Response(body, 200, headers, media_type="application/json")


def parse_tokenize(state: FrontendState, body: bytes) -> ParsedRequest[TokenizeRequest]:
    req = decode_request(body, TokenizeRequest)
    if req.messages is not None:
        raise APIError("the chat form of /tokenize (messages) is not supported; send prompt", param="messages")
    if req.prompt is None:
        raise APIError("prompt is required", param="prompt")
    return ParsedRequest([req.prompt], req)  # the prompt counts against the same limits as any text input


async def answer_tokenize(context: RequestContext, items: list, req: TokenizeRequest) -> Response:
    state, (prompt,) = context.state, items
    if len(prompt) > INLINE_TOKENIZE_CHARS:
        tokens = await asyncio.to_thread(state.tokenizer.encode_text, prompt, req.add_special_tokens)
    else:
        tokens = state.tokenizer.encode_text(prompt, req.add_special_tokens)
    context.ticket.reserve(len(tokens))
    context.log_fields.update(inputs=1, tokens=len(tokens), chars=len(prompt))
    return JSONResponse(
        {
            "count": len(tokens),
            "max_model_len": state.model_config.context_length,
            "tokens": tokens,
            "token_strs": state.tokenizer.token_strings(tokens) if req.return_token_strs else None,
        }
    )


ENCODE_ROUTE = PipelineRoute("/encode", ("POST", "PUT"), parse_encode, answer_encode)
TOKENIZE_ROUTE = PipelineRoute("/tokenize", ("POST",), parse_tokenize, answer_tokenize)


def register_server_info(app: FastAPI, state: FrontendState) -> None:
    @app.get("/get_server_info")
    async def server_info() -> JSONResponse:
        cfg = state.model_config
        info: dict[str, Any] = public_options(state.args)  # the API key is never sent back
        info.update(
            version=_version(),
            served_model_name=state.served_model_name,
            architecture=cfg.architecture,
            pooling=cfg.pooling,
            normalize=cfg.normalize,
            embedding_dim=cfg.embedding_dim,
            matryoshka_dimensions=list(cfg.matryoshka_dimensions) if cfg.matryoshka_dimensions else None,
            max_req_input_len=cfg.context_length,
            resolved_dtype=cfg.dtype,
            **{f"resolved_{key}": value for key, value in state.engine_info.items()},
        )
        return JSONResponse(info)


def _version() -> str:
    try:
        return importlib.metadata.version("embedserve")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
