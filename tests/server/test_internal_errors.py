"""In-process pipeline guarantees: a bug is a 500 naming only the request id; no route that takes a body skips it.

In-process, with the real app (server.http.app.build_app) and the real pipeline: a route whose answer raises
stands for the bug, since a bug that a request can trigger from outside would already be fixed.
"""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from server.http.pipeline import ParsedRequest, PipelineRoute, add_pipeline_route
from server.http.server_stats import stats_snapshot
from tests.support.inprocess_app import inprocess_app

LEAK = "cannot open /srv/private/weights.bin\nFORGED log line"


class LeakyBug(RuntimeError):
    pass


def _parse(state, body: bytes) -> ParsedRequest[None]:
    return ParsedRequest(["one text"], None)


async def _answer_with_a_bug(context, items: list, options: None) -> Response:
    raise LeakyBug(LEAK)


@pytest.fixture(scope="module")
def client(minilm):
    with inprocess_app(minilm) as (app, state):
        add_pipeline_route(app, state, PipelineRoute("/bug", ("POST",), _parse, _answer_with_a_bug))

        @app.get("/plain-bug")  # a route outside the pipeline: the app's own handler answers
        async def plain_bug() -> Response:
            raise LeakyBug(LEAK)

        yield TestClient(app, raise_server_exceptions=False), state


def test_every_route_that_takes_a_body_runs_in_the_pipeline(minilm):
    """A route added later (rerank...) cannot skip the pipeline's steps by registering itself directly."""
    with inprocess_app(minilm) as (app, _):
        with_body = [r for r in app.routes if isinstance(r, APIRoute) and r.methods & {"POST", "PUT", "PATCH"}]
        assert {r.path for r in with_body} == {
            "/v1/embeddings",
            "/encode",
            "/tokenize",
            "/v1/rerank",
            "/rerank",
            "/v1/score",
        }
        assert all(r.endpoint.__qualname__.startswith("add_pipeline_route.") for r in with_body), with_body


@pytest.mark.parametrize(("method", "path"), [("POST", "/bug"), ("GET", "/plain-bug")])
def test_a_bug_is_a_500_naming_only_the_request_id(client, caplog, method, path):
    test_client, state = client
    before = stats_snapshot(state)["requests_failed_internal"]
    with caplog.at_level(logging.ERROR, logger="embedserve.errors"):
        response = test_client.request(method, path, json={"input": "x"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == 500
    rid = re.fullmatch(r"internal server error \(request ([0-9a-f]{32})\); the server's log has the details",
                       error["message"]).group(1)  # fmt: skip
    assert response.headers["x-request-id"] == rid
    for secret in ("LeakyBug", "/srv/private", "FORGED", "Traceback", "test_internal_errors.py"):
        assert secret not in response.text
    logged = [record.getMessage() for record in caplog.records]
    assert any(f"request {rid}" in line and "LeakyBug: cannot open /srv/private/weights.bin\\x0aFORGED" in line
               for line in logged), logged  # fmt: skip
    assert not any(line.startswith("FORGED") for text in logged for line in text.splitlines())
    assert stats_snapshot(state)["requests_failed_internal"] == before + 1
