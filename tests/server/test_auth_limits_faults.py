"""--api-key, the per-request limits (413 and 400s), and an injected forward-pass fault that fails only its batch."""

from __future__ import annotations

import re

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from tests.support.errors import assert_error_envelope
from tests.support.launch import RunningServer

API_KEY = "test-key-0123456789"
FAULT_TOKEN = 29999  # a batch holding this token id fails (EMBEDSERVE_INJECT_FAULTS, engine/faults.py)
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server():
    server = RunningServer(
        ["--api-key", API_KEY, "--max-request-bytes", "20000", "--max-inputs-per-request", "8",
         "--max-input-chars", "300"],
        env={"EMBEDSERVE_INJECT_FAULTS": f"forward:{FAULT_TOKEN}"},
    )  # fmt: skip
    server.auth_headers = AUTH
    yield server
    assert server.stop() == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}, {"Authorization": API_KEY},
     {"Authorization": f"Bearer {API_KEY}x"}],
    ids=["none", "wrong", "basic-scheme", "no-scheme", "longer"],
)  # fmt: skip
def test_missing_or_wrong_key_is_401(server, headers):
    for method, path in (("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("GET", "/stats")):
        response = httpx.request(method, f"{server.base_url}{path}", json={"input": "hi"}, headers=headers)
        error = assert_error_envelope(response, 401, "API key")
        assert error["type"] == "authentication_error"
        assert response.headers["www-authenticate"] == "Bearer"


def test_right_key_is_200_and_probes_need_none(server):
    response = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "hi"}, headers=AUTH)
    assert response.status_code == 200 and len(response.json()["data"][0]["embedding"]) == 384
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert httpx.get(f"{server.base_url}/ready").status_code == 200


def test_openai_client_with_and_without_the_key(server):
    ok = OpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0)
    assert len(ok.embeddings.create(model="m", input=["a", "b"]).data) == 2
    bad = OpenAI(base_url=f"{server.base_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(AuthenticationError):
        bad.embeddings.create(model="m", input="a")


def test_body_over_limit_is_413_declared_or_streamed(server):
    body = b'{"input": "' + b"word " * 5000 + b'"}'  # 25 kB > 20000
    declared = httpx.post(f"{server.base_url}/v1/embeddings", content=body, headers=AUTH)
    assert_error_envelope(declared, 413, "--max-request-bytes")

    def chunks():  # no content-length: the limit is enforced while reading
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    streamed = httpx.post(f"{server.base_url}/v1/embeddings", content=chunks(), headers=AUTH)
    assert_error_envelope(streamed, 413, "--max-request-bytes")


def test_too_many_inputs_and_too_long_input_are_400(server):
    url = f"{server.base_url}/v1/embeddings"
    assert_error_envelope(httpx.post(url, json={"input": ["x"] * 9}, headers=AUTH), 400, "--max-inputs-per-request")
    long_input = httpx.post(url, json={"input": ["short", "y" * 301]}, headers=AUTH)
    assert "input[1] has 301 characters" in assert_error_envelope(long_input, 400, "--max-input-chars")["message"]
    assert httpx.post(url, json={"input": ["x"] * 8}, headers=AUTH).status_code == 200


def test_injected_forward_fault_fails_that_batch_then_serves(server):
    url = f"{server.base_url}/v1/embeddings"
    failed = httpx.post(url, json={"input": [[101, FAULT_TOKEN, 102]]}, headers=AUTH, timeout=30)
    error = assert_error_envelope(failed, 500, "internal server error")
    assert error["type"] == "server_error"
    # The client learns the request id; the exception's class and message stay in the server's log.
    rid = re.search(r"\(request ([0-9a-f]{32})\)", error["message"]).group(1)
    assert rid == failed.headers["x-request-id"] and "InjectedFault" not in failed.text
    assert re.search(
        rf"internal error in request {rid} \(the engine\): forward pass failed: InjectedFault", server.log()
    )
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    after = httpx.post(url, json={"input": [[101, 7592, 102], "next one"]}, headers=AUTH, timeout=30)
    assert after.status_code == 200 and len(after.json()["data"]) == 2
    assert server.stats()["requests_failed_internal"] == 1


@pytest.mark.slow  # a variant of what a quicker test covers: `make test-slow`
def test_fatal_fault_stops_the_server_cleanly():
    server = RunningServer([], env={"EMBEDSERVE_INJECT_FAULTS": f"fatal:{FAULT_TOKEN}"})
    response = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": [[101, FAULT_TOKEN, 102]]}, timeout=30)
    assert_error_envelope(response, 503, "embedserve-scheduler died")
    assert httpx.get(f"{server.base_url}/health").status_code == 503
    assert server.proc.wait(timeout=30) != 0
    assert server.leftover_processes() == []
    assert "fatal error in the forward pass" in server.log()
