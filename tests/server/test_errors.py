"""Bad input gets a 400 in OpenAI's envelope (never FastAPI's 422), and the server stays healthy.

The 400s come from the frontend alone, so they are asked of the real app in-process; staying healthy is asked of
a launched server.
"""

from __future__ import annotations

import httpx
import pytest
from openai import BadRequestError
from starlette.testclient import TestClient

from tests.support.inprocess_app import inprocess_app, openai_client_of

BAD_BODIES = {
    "empty string": ({"input": ""}, "empty"),
    "whitespace only": ({"input": "  \n\t "}, "whitespace"),
    "empty list": ({"input": []}, "empty list"),
    "empty string in list": ({"input": ["ok", ""]}, "input[1]"),
    "number": ({"input": 12.5}, "must be a string"),
    "float in list": ({"input": ["ok", 1.5]}, "input[1]"),
    "nested string list": ({"input": [["a", "b"]]}, "integer token ids"),
    "null item": ({"input": [None]}, "input[0]"),
    "bool token": ({"input": [[True, 5]]}, "integer token ids"),
    "empty token list": ({"input": [[]]}, "empty token-id list"),
    "negative token id": ({"input": [[101, -1, 102]]}, "token id -1"),
    "out of vocabulary": ({"input": [101, 30522]}, "token id 30522"),
    "unknown encoding": ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
    "missing input": ({"model": "m"}, "input"),
    "dimensions as string": ({"input": "x", "dimensions": "ten"}, "dimensions"),
    "input as object": ({"input": {"text": 1}}, "must be a string"),
    "multimodal item on a text model": ({"input": [{"text": "a cat"}]}, "not multimodal items"),
}


@pytest.fixture(scope="module")
def client(minilm):
    """The quick start's app (all-MiniLM-L6-v2, every limit at its default), its engine never started."""
    with inprocess_app(minilm) as (app, _):
        yield TestClient(app)


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_bodies_get_400_envelope(client, name):
    body, fragment = BAD_BODIES[name]
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == 400
    assert fragment in error["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2", b'"just a string"', b"\xff\xfe"])
def test_malformed_json_is_400_not_422(client, raw):
    response = client.post("/v1/embeddings", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()


def test_too_long_input_names_both_numbers(client):
    with pytest.raises(BadRequestError) as info:
        openai_client_of(client).embeddings.create(model="m", input="word " * 400)
    message = info.value.body["message"]
    assert "402 tokens" in message and "context length of 256" in message


def test_unknown_route_uses_envelope(client):
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == 404


def test_server_is_healthy_after_bad_input(default_server):
    for body, _ in BAD_BODIES.values():
        httpx.post(f"{default_server.base_url}/v1/embeddings", json=body)
    assert httpx.get(f"{default_server.base_url}/health").status_code == 200
    ok = httpx.post(f"{default_server.base_url}/v1/embeddings", json={"input": "still fine"})
    assert ok.status_code == 200
