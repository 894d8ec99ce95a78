"""The one request pipeline of every route that embeds or tokenizes; a route only parses its body and shapes its answer.

Every step is here, in order, so no route can skip one: refusal while draining (503) and admission (429),
the bounded body read (413), parsing (the route's), the input limits (400), the work raced against the
client's disconnect (the engine drops it), errors in OpenAI's envelope (a bug is a 500 that names only the
request id), the request id on every answer, the /stats count and the request log's fields.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response

from server.http.admission import ClientDisconnected, Ticket, check_input_sizes, read_body
from server.http.disconnect import run_unless_disconnected
from server.http.errors import APIError, error_response, unexpected_error_response
from server.http.server_stats import CLIENT_CLOSED

if TYPE_CHECKING:
    from server.http.app import FrontendState

Options = TypeVar("Options")


@dataclass(frozen=True)
class ParsedRequest(Generic[Options]):
    items: list  # every input the route will tokenize or embed: the pipeline checks them against the limits
    options: Options  # the rest of the request, as the route needs it to answer
    items_name: str = "input"  # the request field the items came from, as limit errors name it


@dataclass
class RequestContext:
    """One admitted request as a route's `answer` sees it."""

    state: FrontendState
    request: Request
    rid: str  # the request's id: x-request-id, the request log, the engine, error messages
    started: float  # time.perf_counter() when the request arrived, before its body was read
    ticket: Ticket  # its share of the admission budget; reserve() sets it to the request's real size
    log_fields: dict[str, Any] = field(default_factory=dict)  # what the request log line adds


@dataclass(frozen=True)
class PipelineRoute(Generic[Options]):
    """What a route declares: where it lives, how its body becomes inputs, and how it answers them."""

    path: str
    methods: tuple[str, ...]
    parse: Callable[[FrontendState, bytes], ParsedRequest[Options]]  # raises APIError on a bad body
    answer: Callable[[RequestContext, list, Options], Awaitable[Response]]  # gets the checked items


def add_pipeline_route(app: FastAPI, state: FrontendState, route: PipelineRoute) -> None:
    """Register `route` wrapped in the pipeline: the only way a route that embeds or tokenizes is registered."""

    async def endpoint(request: Request) -> Response:
        return await _run_pipeline(state, route, request)

    state.pipeline_paths.add(route.path)  # /stats counts every answer of these
    endpoint.__name__ = "pipeline" + route.path.replace("/", "_")
    app.add_api_route(route.path, endpoint, methods=list(route.methods))


async def _run_pipeline(state: FrontendState, route: PipelineRoute, request: Request) -> Response:
    rid, started = uuid.uuid4().hex, time.perf_counter()
    args = state.args
    log_fields: dict[str, Any] = {"id": rid}
    request.state.log_fields = log_fields  # read by the request log (server/http/metrics.py) once the answer is sent
    try:
        # Admission first: a refused request costs no body read, no decoding and no tokenizing.
        with state.health.admission.admit() as ticket:
            body = await read_body(request, args.max_request_bytes, ticket)
            parsed = route.parse(state, body)
            check_input_sizes(parsed.items, args.max_inputs_per_request, args.max_input_chars, parsed.items_name)
            context = RequestContext(state, request, rid, started, ticket, log_fields)
            response = await run_unless_disconnected(
                request.receive, route.answer(context, parsed.items, parsed.options)
            )
    except APIError as error:
        response = error_response(error.message, error.status, error.param, error.headers)
    except ClientDisconnected:
        # Nobody will read this answer; the work was already dropped (server/http/disconnect.py).
        log_fields["aborted"] = "client-disconnected"
        return Response(status_code=CLIENT_CLOSED)  # counted as requests_aborted_by_client
    except Exception as error:  # a bug: the client learns the request id, the log the rest
        response = unexpected_error_response(rid, f"{request.method} {request.url.path}", error)
    response.headers.setdefault("x-request-id", rid)
    return response
