"""Every route that embeds or tokenizes keeps every limit: a table of routes x cases against one small-limit server.

The cases: body too large (413), too many inputs and too long an input (400), overload (429 with
Retry-After), a client that hangs up (its work is dropped), a wrong key (401), a bug (a 500 that names only
the request id), and, last since it stops the server, draining (503).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
from dataclasses import dataclass

import httpx
import pytest

from tests.support.errors import assert_error_envelope
from tests.support.launch import RunningServer
from tests.support.wait import wait_until

API_KEY = "pipeline-key-5b1d0c9e"  # given through EMBEDSERVE_API_KEY: never on a command line
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_BYTES, MAX_INPUTS, MAX_CHARS, MAX_QUEUED = 1000, 2, 50, 2
FAULT_TOKEN = 29999  # a forward holding this token id fails (engine/faults.py)


@dataclass(frozen=True)
class RouteCase:
    """How to say each thing to one route; None where the route cannot say it."""

    ok: dict
    too_many: dict | None  # more inputs than --max-inputs-per-request
    too_long: dict  # a text over --max-input-chars, in a body under --max-request-bytes
    oversized: dict  # a body over --max-request-bytes
    engine_inputs: int | None  # inputs `ok` puts in the engine (None: the route never reaches it)


ROUTES = {
    "/v1/embeddings": RouteCase(
        {"input": ["first", "second"]}, {"input": ["a", "b", "c"]}, {"input": ["ok", "x" * (MAX_CHARS + 1)]},
        {"input": "word " * 400}, 2,
    ),
    "/encode": RouteCase(
        {"text": ["first", "second"]}, {"text": ["a", "b", "c"]}, {"text": "x" * (MAX_CHARS + 1)},
        {"text": ["word"] * 500}, 2,
    ),
    "/tokenize": RouteCase(
        {"prompt": "hello world"}, None, {"prompt": "x" * (MAX_CHARS + 1)}, {"prompt": "word " * 400}, None,
    ),
}  # fmt: skip
# /tokenize never reaches the engine: a client of it can only hang up while its body is read (tested for all).
ENGINE_ROUTES = [route for route, case in ROUTES.items() if case.engine_inputs is not None]


@pytest.fixture(scope="module")
def server(minilm):
    server = RunningServer(
        ["--model-path", minilm, "--max-request-bytes", str(MAX_BYTES), "--max-inputs-per-request", str(MAX_INPUTS),
         "--max-input-chars", str(MAX_CHARS), "--max-queued-requests", str(MAX_QUEUED), "--shutdown-timeout", "60",
         "--log-requests"],
        env={"EMBEDSERVE_API_KEY": API_KEY, "EMBEDSERVE_INJECT_FAULTS": f"forward:{FAULT_TOKEN}"},
    )  # fmt: skip
    server.auth_headers = AUTH
    yield server
    server.stop()


def post(server: RunningServer, route: str, body, headers: dict | None = None, timeout=60) -> httpx.Response:
    """`body` as JSON when it is a dict, else as raw bytes (or chunks of them); with the key unless `headers`."""
    json, content = (body, None) if isinstance(body, dict) else (None, body)
    headers = AUTH if headers is None else headers
    return httpx.post(f"{server.base_url}{route}", json=json, content=content, headers=headers, timeout=timeout)


@contextlib.contextmanager
def engine_held(server: RunningServer):
    """The scheduler stopped, so what reaches it stays queued until the block ends."""
    scheduler = server.child("scheduler")
    os.kill(scheduler.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(scheduler.pid, signal.SIGCONT)


def send_in_background(server: RunningServer, count: int) -> tuple[list[threading.Thread], list]:
    """`count` one-input embedding requests, each admitted before the next is sent."""
    results: list = []
    threads = []
    for i in range(count):
        thread = threading.Thread(target=lambda i=i: results.append(post(server, "/v1/embeddings", {"input": f"t{i}"})))
        thread.start()
        threads.append(thread)
        wait_until(lambda i=i: server.stats()["admitted_requests"] == i + 1, message="the request to be admitted")
    return threads, results


@pytest.mark.parametrize("route", ROUTES)
def test_ok_answer_carries_the_request_id_and_is_counted(server, route):
    before = server.stats()["responses_by_status"].get("200", 0)
    response = post(server, route, ROUTES[route].ok)
    assert response.status_code == 200, response.text
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert server.stats()["responses_by_status"]["200"] == before + 1  # /encode and /tokenize count as well


@pytest.mark.parametrize("route", ROUTES)
def test_body_over_the_limit_is_413_declared_or_streamed(server, route):
    body = httpx.Request("POST", "/", json=ROUTES[route].oversized).content
    assert len(body) > MAX_BYTES
    assert_error_envelope(post(server, route, body), 413, "--max-request-bytes")

    def chunks():  # no Content-Length: the limit holds while reading
        for start in range(0, len(body), 256):
            yield body[start : start + 256]

    assert_error_envelope(post(server, route, chunks()), 413, "--max-request-bytes")


@pytest.mark.parametrize("route", [r for r, case in ROUTES.items() if case.too_many is not None])
def test_too_many_inputs_is_400(server, route):
    assert_error_envelope(post(server, route, ROUTES[route].too_many), 400, "--max-inputs-per-request")


@pytest.mark.parametrize("route", ROUTES)
def test_too_long_input_is_400(server, route):
    error = assert_error_envelope(post(server, route, ROUTES[route].too_long), 400, "--max-input-chars")
    assert f"has {MAX_CHARS + 1} characters" in error["message"] and error["param"] == "input"


@pytest.mark.parametrize("route", ROUTES)
def test_wrong_key_is_401(server, route):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        error = assert_error_envelope(post(server, route, ROUTES[route].ok, headers=headers), 401, "API key")
        assert error["type"] == "authentication_error"


@pytest.mark.parametrize("route", ROUTES)
def test_full_queue_is_429_with_retry_after(server, route):
    before = server.stats()["requests_rejected_overloaded"]
    with engine_held(server):
        threads, results = send_in_background(server, MAX_QUEUED)
        response = post(server, route, ROUTES[route].ok)
    for thread in threads:
        thread.join(timeout=60)
    error = assert_error_envelope(response, 429, f"limit of {MAX_QUEUED} queued requests")
    assert error["type"] == "rate_limit_error" and response.headers["retry-after"] == "1"
    assert [r.status_code for r in results] == [200] * MAX_QUEUED
    assert server.stats()["requests_rejected_overloaded"] == before + 1


@pytest.mark.parametrize("route", ROUTES)
def test_client_hanging_up_mid_body_is_counted_and_released(server, route):
    before = server.stats()["requests_aborted_by_client"]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = (f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {MAX_BYTES}\r\n\r\n")  # fmt: skip
        sock.sendall(head.encode() + b'{"input": "')
        wait_until(lambda: server.stats()["admitted_tokens"] == MAX_BYTES, message="the body read to begin")
    stats = wait_until(
        lambda: (s := server.stats())["requests_aborted_by_client"] == before + 1 and s,
        message="the disconnect to count",
    )
    assert stats["admitted_requests"] == 0 and stats["admitted_tokens"] == 0


@pytest.mark.parametrize("route", ENGINE_ROUTES)
def test_client_hanging_up_while_queued_has_its_work_dropped(server, route):
    before = server.stats()
    with engine_held(server):
        with pytest.raises(httpx.ReadTimeout):
            post(server, route, ROUTES[route].ok, timeout=httpx.Timeout(10, read=0.5))
        wait_until(lambda: server.stats()["requests_aborted_by_client"] == before["requests_aborted_by_client"] + 1,
                 message="the frontend to notice the disconnect")  # fmt: skip
    dropped = before["engine"]["inputs_dropped"] + ROUTES[route].engine_inputs
    after = wait_until(
        lambda: (s := server.stats())["engine"]["inputs_dropped"] == dropped and s, message="the engine to drop"
    )
    assert after["engine"]["inputs_done"] == before["engine"]["inputs_done"]  # none reached the model
    assert after["engine_pending_requests"] == 0 and after["admitted_requests"] == 0


@pytest.mark.parametrize("route", ENGINE_ROUTES)
def test_failed_forward_is_a_500_without_internals(server, route):
    body = {"input": [[101, FAULT_TOKEN, 102]]} if route == "/v1/embeddings" else {"input_ids": [101, FAULT_TOKEN, 102]}
    response = post(server, route, body)
    error = assert_error_envelope(response, 500, f"(request {response.headers['x-request-id']})")
    assert error["type"] == "server_error" and "InjectedFault" not in response.text and "/" not in error["message"]
    assert f"internal error in request {response.headers['x-request-id']} (the engine)" in server.log()


def test_encode_of_5000_inputs_and_tokenize_of_10_mb_are_refused(server):
    """The issue's reproductions: both routes once skipped every limit."""
    assert_error_envelope(post(server, "/encode", {"text": ["a"] * 5000}), 413, "--max-request-bytes")
    compact = {"text": ["a"] * (MAX_INPUTS + 1)}  # under the byte limit, over the input count
    assert_error_envelope(post(server, "/encode", compact), 400, "--max-inputs-per-request")
    huge = b'{"prompt": "' + b"x" * 10_000_000 + b'"}'
    assert_error_envelope(post(server, "/tokenize", huge), 413, f"{len(huge)} bytes")  # refused unread
    assert server.stats()["admitted_tokens"] == 0


def test_forged_log_line_is_escaped(server):
    forged = "2026-01-01 00:00:00,000 [frontend] INFO embedserve.requests: POST /v1/embeddings status=200 FORGED"
    response = httpx.get(f"{server.base_url}/x%0a{forged.replace(' ', '%20')}%1b[31m%5cx0a", headers=AUTH)
    assert response.status_code == 404
    line = wait_until(
        lambda: next((x for x in server.log().splitlines() if "FORGED" in x), None), message="the request log"
    )
    assert not line.startswith("2026-01-01") and "GET /x\\x0a2026-01-01" in line
    assert "\\x1b[31m\\\\x0a status=404" in line  # ANSI escape shown, and a literal backslash doubled


def test_api_key_from_the_environment_is_never_shown(server):
    info = httpx.get(f"{server.base_url}/get_server_info", headers=AUTH).json()
    assert info["api_key"] == "<redacted>" and info["api_key_file"] is None
    httpx.get(f"{server.base_url}/{API_KEY}", headers=AUTH)  # a client putting the key in a logged path
    bad = post(server, "/v1/embeddings", {"input": API_KEY}, headers={"Authorization": f"Bearer {API_KEY}x"})
    for text in (str(info), server.log(), str(server.stats()), bad.text):
        assert API_KEY not in text
    assert "GET /<redacted> status=404" in server.log()
    for proc in [server.proc.pid, *(child.pid for child in server.children)]:
        assert API_KEY not in " ".join(_cmdline(proc))  # `ps` shows no key


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read().decode(errors="replace").split("\0")


# Last in the module: these stop the shared server.
@pytest.fixture(scope="module")
def draining(server):
    """The server after SIGTERM, held draining by one request the stopped engine cannot finish."""
    with engine_held(server):
        threads, results = send_in_background(server, 1)
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(f"{server.base_url}/ready").status_code == 503, message="the drain to start")
        yield server
    threads[0].join(timeout=60)
    assert results[0].status_code == 200  # the admitted request still finished
    assert server.proc.wait(timeout=30) == 0


@pytest.mark.parametrize("route", ROUTES)
def test_draining_server_refuses_with_503(draining, route):
    response = post(draining, route, ROUTES[route].ok)
    assert_error_envelope(response, 503, "shutting down")
    assert response.headers["connection"] == "close"
