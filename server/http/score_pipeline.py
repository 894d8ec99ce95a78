"""Cross-encoder scoring for the rerank routes: which task a model serves, pairs to the engine, logits to scores."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from server.http.admission import check_text_length
from server.http.embedding_pipeline import INLINE_TOKENIZE_CHARS, EmbedOutcome, run_engine
from server.http.errors import APIError

if TYPE_CHECKING:
    from server.http.app import FrontendState
    from server.http.pipeline import RequestContext

RERANK_ROUTES = "POST /v1/rerank, /rerank or /v1/score"


def require_task(state: FrontendState, task: str) -> None:
    """A reranker has no embeddings and an embedder cannot score pairs: either mistake is a 400 that says so."""
    config = state.model_config
    if config.task == task:
        return
    if task == "embed":
        raise APIError(
            f"this model ({config.architecture}) is a reranker (a cross-encoder): it scores query-document pairs "
            f"with {RERANK_ROUTES} and has no embeddings"
        )
    raise APIError(
        f"this model ({config.architecture}) is an embedding model: reranking needs a cross-encoder "
        "(a *ForSequenceClassification folder, or a Qwen3-Reranker with configs/qwen3-reranker-0.6b.yaml); ask this one for embeddings with POST /v1/embeddings"
    )


def text_list(value: Any, param: str, allow_objects: bool = False) -> list[str]:
    """A non-empty list of non-blank texts (Cohere's documents may also be {"text": ...} objects); 400 otherwise."""
    if not isinstance(value, list) or not value:
        raise APIError(f"{param} must be a non-empty list of strings", param=param)
    texts = []
    for index, item in enumerate(value):
        where = f"{param}[{index}]"
        if allow_objects and isinstance(item, dict):
            if set(item) != {"text"}:
                raise APIError(f'{where} must be a string or {{"text": string}}, not an object with {sorted(item)}', param=param)  # fmt: skip
            item, where = item["text"], f"{where}.text"
        texts.append(text_field(item, where, param))
    return texts


def text_field(value: Any, where: str, param: str) -> str:
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise APIError(f"{where} must be a string, not {kind}", param=param)
    if not value.strip():
        raise APIError(f"{where} is empty or only whitespace", param=param)
    return value


def check_queries(state: FrontendState, queries: list[str], param: str) -> None:
    """The pipeline bounds the documents; the queries get the same --max-input-chars."""
    for index, query in enumerate(queries):
        where = param if len(queries) == 1 else f"{param}[{index}]"
        check_text_length(query, state.args.max_input_chars, where, param)


def check_instruction(state: FrontendState, value: Any) -> str | None:
    """The request's `instruction` for an instruction-aware reranker (Qwen3-Reranker); a 400 for any other model."""
    if value is None:
        return None
    if state.pairs is None or not state.pairs.takes_instruction:
        raise APIError(
            f"this model ({state.model_config.architecture}) takes no instruction: only an instruction-aware "
            "reranker (Qwen3-Reranker) does; leave instruction out",
            param="instruction",
        )
    instruction = text_field(value, "instruction", "instruction")
    check_text_length(instruction, state.args.max_input_chars, "instruction", "instruction")
    return instruction


@dataclass(frozen=True)
class PairScores:
    scores: list[float]  # one per pair, in the request's order
    outcome: EmbedOutcome


async def score_pairs(
    context: RequestContext,
    queries: list[str],
    documents: list[str],
    use_activation: bool,
    truncate: bool,
    side: str = "right",
    param: str = "documents",
    instruction: str | None = None,
) -> PairScores | EmbedOutcome:
    """Each (query, document) pair's score: the folder's activation on the logit, or the logit itself.

    `instruction` (checked by `check_instruction`) replaces an instruction-aware reranker's default one.

    Returns the outcome alone when the engine answered with an error body, to be sent as it is.
    """
    state = context.state
    assert state.pairs is not None, "require_task admits only cross-encoders"
    num_chars = sum(map(len, queries)) + sum(map(len, documents))
    if num_chars > INLINE_TOKENIZE_CHARS:
        tokens = await asyncio.to_thread(state.pairs.tokenize, queries, documents, truncate, side, param, instruction)
    else:
        tokens = state.pairs.tokenize(queries, documents, truncate, side, param, instruction)
    context.ticket.reserve(tokens.num_tokens)
    outcome = await run_engine(context, tokens, None, num_chars, "float", None, task="score")
    if outcome.response.status != 200:
        return outcome
    logits = np.frombuffer(outcome.response.body, dtype="<f4").reshape(len(documents), -1)[:, 0].astype(np.float64)
    if use_activation and state.model_config.score_activation == "sigmoid":
        logits = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without exp's overflow for large logits
    return PairScores(logits.tolist(), outcome)
