"""The rerank routes of a cross-encoder, as pipeline routes: Cohere/Jina's POST /v1/rerank (as vLLM and SGLang answer
it), text-embeddings-inference's POST /rerank, and vLLM's POST /v1/score. Here is only how each parses and answers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi.responses import Response

from server.http.errors import APIError
from server.http.pipeline import ParsedRequest, PipelineRoute, RequestContext
from server.http.protocol import decode_request
from server.http.score_pipeline import (
    PairScores,
    check_instruction,
    check_queries,
    require_task,
    score_pairs,
    text_field,
    text_list,
)

if TYPE_CHECKING:
    from server.http.app import FrontendState

_json = msgspec.json.Encoder()


class RerankRequest(msgspec.Struct, kw_only=True):
    """Cohere's and Jina's rerank request, as vLLM and SGLang take it; `use_activation` false gives raw logits."""

    query: Any = None
    documents: Any = None
    model: str | None = None
    top_n: int | None = None  # absent or 0: every document
    return_documents: bool = True
    use_activation: bool | None = None
    instruction: Any = None  # Qwen3-Reranker: replaces its default instruction


class TEIRerankRequest(msgspec.Struct, kw_only=True):
    """text-embeddings-inference's rerank request; `truncate` absent follows --allow-auto-truncate."""

    query: Any = None
    texts: Any = None
    truncate: bool | None = None
    truncation_direction: str = "right"  # which end of a document truncation removes
    raw_scores: bool = False
    return_text: bool = False
    instruction: Any = None  # Qwen3-Reranker: replaces its default instruction


class ScoreRequest(msgspec.Struct, kw_only=True):
    """vLLM's score request: text_1 against each text_2, or pairwise when both are lists of one length."""

    text_1: Any = None
    text_2: Any = None
    model: str | None = None
    use_activation: bool | None = None
    instruction: Any = None  # Qwen3-Reranker: replaces its default instruction


@dataclass(frozen=True)
class Pairs:
    queries: list[str]  # one query for every document, or one per document
    request: Any  # the decoded request, for the options each route answers with
    instruction: str | None = None  # an instruction-aware reranker's, in place of its default


def ranked(scores: list[float], top_n: int | None = None) -> list[int]:
    """Document indices by descending score (ties keep the request's order), at most `top_n`."""
    order = sorted(range(len(scores)), key=lambda index: -scores[index])
    return order[:top_n] if top_n else order


def _response(scored: PairScores, body: Any, context: RequestContext) -> Response:
    state = context.state
    headers = scored.outcome.headers(state.engine_info.get("device", state.args.device))
    return Response(_json.encode(body), 200, headers, media_type="application/json")


async def _score(
    context: RequestContext, items: list, pairs: Pairs, use_activation: bool, **truncation: Any
) -> PairScores | Response:
    args = context.state.args
    truncation.setdefault("truncate", args.allow_auto_truncate)
    result = await score_pairs(
        context, pairs.queries, items, use_activation, instruction=pairs.instruction, **truncation
    )
    if not isinstance(result, PairScores):  # the engine's error, sent as it is
        headers = result.headers(context.state.engine_info.get("device", args.device))
        return Response(result.response.body, result.response.status, headers, media_type="application/json")
    return result


def parse_rerank(state: FrontendState, body: bytes) -> ParsedRequest[Pairs]:
    require_task(state, "score")
    req = decode_request(body, RerankRequest)
    query = text_field(req.query, "query", "query")
    check_queries(state, [query], "query")
    documents = text_list(req.documents, "documents", allow_objects=True)
    if req.top_n is not None and req.top_n < 0:
        raise APIError(f"top_n must be at least 0 (0 returns every document), got {req.top_n}", param="top_n")
    return ParsedRequest(documents, Pairs([query], req, check_instruction(state, req.instruction)), "documents")


async def answer_rerank(context: RequestContext, documents: list, pairs: Pairs) -> Response:
    req: RerankRequest = pairs.request
    scored = await _score(context, documents, pairs, req.use_activation is not False)
    if isinstance(scored, Response):
        return scored
    results = []
    for index in ranked(scored.scores, req.top_n):
        result: dict[str, Any] = {"index": index, "relevance_score": scored.scores[index]}
        if req.return_documents:
            result["document"] = {"text": documents[index]}
        results.append(result)
    num_tokens = scored.outcome.tokens.num_tokens
    body = {
        "id": f"rerank-{context.rid}",
        "model": context.state.served_model_name,
        "results": results,
        "usage": {"prompt_tokens": num_tokens, "total_tokens": num_tokens},
    }
    return _response(scored, body, context)


def parse_tei_rerank(state: FrontendState, body: bytes) -> ParsedRequest[Pairs]:
    require_task(state, "score")
    req = decode_request(body, TEIRerankRequest)
    query = text_field(req.query, "query", "query")
    check_queries(state, [query], "query")
    texts = text_list(req.texts, "texts")
    if req.truncation_direction.lower() not in ("left", "right"):
        raise APIError(
            f"truncation_direction must be 'left' or 'right', not {req.truncation_direction!r}",
            param="truncation_direction",
        )
    return ParsedRequest(texts, Pairs([query], req, check_instruction(state, req.instruction)), "texts")


async def answer_tei_rerank(context: RequestContext, texts: list, pairs: Pairs) -> Response:
    req: TEIRerankRequest = pairs.request
    truncation: dict[str, Any] = {"side": req.truncation_direction.lower(), "param": "texts"}
    if req.truncate is not None:
        truncation["truncate"] = req.truncate
    scored = await _score(context, texts, pairs, not req.raw_scores, **truncation)
    if isinstance(scored, Response):
        return scored
    ranks = []
    for index in ranked(scored.scores):
        rank: dict[str, Any] = {"index": index, "score": scored.scores[index]}
        if req.return_text:
            rank["text"] = texts[index]
        ranks.append(rank)
    return _response(scored, ranks, context)


def _texts(value: Any, param: str) -> list[str]:
    return text_list(value, param) if isinstance(value, list) else [text_field(value, param, param)]


def parse_score(state: FrontendState, body: bytes) -> ParsedRequest[Pairs]:
    require_task(state, "score")
    req = decode_request(body, ScoreRequest)
    firsts, seconds = _texts(req.text_1, "text_1"), _texts(req.text_2, "text_2")
    if len(firsts) > 1 and len(firsts) != len(seconds):
        raise APIError(
            f"text_1 has {len(firsts)} texts and text_2 {len(seconds)}: give one text_1 for every text_2, "
            "or lists of one length to score pairwise",
            param="text_2",
        )
    check_queries(state, firsts, "text_1")
    return ParsedRequest(seconds, Pairs(firsts, req, check_instruction(state, req.instruction)), "text_2")


async def answer_score(context: RequestContext, seconds: list, pairs: Pairs) -> Response:
    req: ScoreRequest = pairs.request
    scored = await _score(context, seconds, pairs, req.use_activation is not False, param="text_2")
    if isinstance(scored, Response):
        return scored
    num_tokens = scored.outcome.tokens.num_tokens
    body = {
        "id": f"score-{context.rid}",
        "object": "list",
        "created": int(time.time()),
        "model": context.state.served_model_name,
        "data": [{"index": index, "object": "score", "score": score} for index, score in enumerate(scored.scores)],
        "usage": {"prompt_tokens": num_tokens, "total_tokens": num_tokens, "completion_tokens": 0},
    }
    return _response(scored, body, context)


RERANK_ROUTE = PipelineRoute("/v1/rerank", ("POST",), parse_rerank, answer_rerank)
TEI_RERANK_ROUTE = PipelineRoute("/rerank", ("POST",), parse_tei_rerank, answer_tei_rerank)
SCORE_ROUTE = PipelineRoute("/v1/score", ("POST",), parse_score, answer_score)
