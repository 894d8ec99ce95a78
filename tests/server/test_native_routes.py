"""SGLang's /encode and /get_server_info, and vLLM's /tokenize, against a launched server.

The 400s come from the frontend alone, so they are asked of the real app in-process.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.support.compare import assert_close_vectors
from tests.support.inprocess_app import inprocess_app

TEXTS = ["hello world", "SGLang's native encode route", "tokens counted the same way everywhere"]


@pytest.fixture(scope="module")
def base_url(preset_server) -> str:
    return preset_server.base_url


@pytest.fixture(scope="module")
def inprocess_client(minilm) -> Iterator[TestClient]:
    """The preset's model in the real app in-process, its engine never started."""
    with inprocess_app(minilm) as (app, _):
        yield TestClient(app)


def post(base_url: str, route: str, body: dict, status: int = 200) -> httpx.Response:
    response = httpx.post(f"{base_url}{route}", json=body, timeout=30)
    assert response.status_code == status, response.text
    return response


def post_inprocess(client: TestClient, route: str, body: dict, status: int) -> httpx.Response:
    response = client.post(route, json=body)
    assert response.status_code == status, response.text
    return response


def openai_vectors(base_url: str, texts: list[str]) -> tuple[np.ndarray, int]:
    payload = post(base_url, "/v1/embeddings", {"input": texts, "encoding_format": "float"}).json()
    return np.array([d["embedding"] for d in payload["data"]], dtype=np.float32), payload["usage"]["prompt_tokens"]


def test_encode_single_text_matches_openai_route(base_url):
    response = post(base_url, "/encode", {"text": TEXTS[0]})
    result = response.json()
    assert set(result) == {"embedding", "meta_info"}  # one input: one object, as SGLang answers
    expected, tokens = openai_vectors(base_url, TEXTS[:1])
    assert_close_vectors([result["embedding"]], expected)
    assert result["meta_info"]["prompt_tokens"] == tokens
    assert result["meta_info"]["id"] == response.headers["x-request-id"]
    assert result["meta_info"]["e2e_latency"] > 0
    assert response.headers["x-inference-time"].isdigit()


def test_encode_batch_of_texts_and_of_token_ids_round_trip(base_url):
    by_text = post(base_url, "/encode", {"text": TEXTS}).json()
    assert isinstance(by_text, list) and len(by_text) == len(TEXTS)
    expected, _ = openai_vectors(base_url, TEXTS)
    assert_close_vectors([item["embedding"] for item in by_text], expected)
    # /tokenize's ids, sent back through /encode, give the vectors of the texts
    ids = [post(base_url, "/tokenize", {"prompt": t}).json()["tokens"] for t in TEXTS]
    by_ids = post(base_url, "/encode", {"input_ids": ids}).json()
    assert_close_vectors([item["embedding"] for item in by_ids], expected)
    assert [item["meta_info"]["prompt_tokens"] for item in by_ids] == [len(i) for i in ids]
    single = post(base_url, "/encode", {"input_ids": ids[0]}).json()
    assert_close_vectors([single["embedding"]], expected[:1])
    put = httpx.put(f"{base_url}/encode", json={"text": TEXTS[0]}, timeout=30)  # SGLang takes PUT too
    assert put.status_code == 200 and len(put.json()["embedding"]) == 384


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"text": "a", "input_ids": [1, 2]}, "text"),
        ({}, "text"),
        ({"text": ["a", 5]}, "text"),
        ({"text": ""}, "input"),
        ({"text": []}, "input"),
        ({"input_ids": [[101, 102], "x"]}, "input_ids"),
        ({"input_ids": [101, 10**9]}, "input"),
        ({"text": "a", "image_data": "http://example.com/cat.png"}, "image_data"),
    ],
)
def test_encode_rejects_bad_requests_with_400(inprocess_client, body, param):
    error = post_inprocess(inprocess_client, "/encode", body, status=400).json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_tokenize_count_equals_embeddings_usage(base_url):
    for text in [*TEXTS, "a much longer text " * 20]:
        result = post(base_url, "/tokenize", {"model": "ignored", "prompt": text}).json()
        _, prompt_tokens = openai_vectors(base_url, [text])
        assert result["count"] == len(result["tokens"]) == prompt_tokens
        assert result["max_model_len"] == 256 and result["token_strs"] is None


def test_tokenize_options(base_url):
    plain = post(base_url, "/tokenize", {"prompt": "hello world", "add_special_tokens": False}).json()
    full = post(base_url, "/tokenize", {"prompt": "hello world", "return_token_strs": True}).json()
    assert full["tokens"][1:-1] == plain["tokens"] and full["count"] == plain["count"] + 2
    assert full["token_strs"] == ["[CLS]", "hello", "world", "[SEP]"]
    # Longer than the context: /tokenize still counts every token, so a client can check before embedding.
    long = post(base_url, "/tokenize", {"prompt": "word " * 400}).json()
    assert long["count"] > long["max_model_len"]


@pytest.mark.parametrize(
    ("body", "param"),
    [({"messages": [{"role": "user", "content": "hi"}]}, "messages"), ({}, "prompt"), ({"prompt": 5}, "prompt")],
)
def test_tokenize_rejects_bad_requests_with_400(inprocess_client, body, param):
    assert post_inprocess(inprocess_client, "/tokenize", body, status=400).json()["error"]["param"] == param


def test_get_server_info(base_url, minilm):
    info = httpx.get(f"{base_url}/get_server_info", timeout=10).json()
    assert info["model_path"] == minilm and info["served_model_name"] == "from-cli"
    assert info["max_req_input_len"] == 256 and info["embedding_dim"] == 384
    assert info["resolved_device"] == "cpu" and info["resolved_attention_backend"] == "torch_native"
    assert info["max_prefill_tokens"] == 2048 and info["log_requests"] is True and info["version"]  # the CPU default
