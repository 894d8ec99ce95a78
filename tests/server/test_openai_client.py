"""The OpenAI Python client against a launched server, compared with sentence-transformers."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.support.compare import assert_close_vectors
from tests.support.texts import varied_texts


@pytest.fixture(scope="module")
def client(default_server) -> OpenAI:
    return OpenAI(base_url=f"{default_server.base_url}/v1", api_key="x")


def _vectors(response) -> np.ndarray:
    assert [d.index for d in response.data] == list(range(len(response.data)))
    return np.array([d.embedding for d in response.data], dtype=np.float32)


def test_list_input_with_default_base64_matches_reference(client, minilm, st_model_factory):
    texts = varied_texts(50, long_words=150)  # within the 256-token context
    response = client.embeddings.create(model="anything", input=texts)  # the client asks for base64
    reference = st_model_factory(minilm).encode(texts, convert_to_numpy=True)
    assert_close_vectors(_vectors(response), reference)
    assert response.model == minilm
    tokenizer = st_model_factory(minilm).tokenizer
    expected_tokens = sum(len(tokenizer(t)["input_ids"]) for t in texts)
    assert response.usage.prompt_tokens == response.usage.total_tokens == expected_tokens


def test_single_string_float_format(client, minilm, st_model_factory):
    response = client.embeddings.create(model="m", input="hello world", encoding_format="float")
    assert len(response.data) == 1 and len(response.data[0].embedding) == 384
    assert_close_vectors(_vectors(response), st_model_factory(minilm).encode(["hello world"]))
    assert abs(np.linalg.norm(response.data[0].embedding) - 1) < 1e-5


def test_plain_json_as_in_sglang_quick_start(default_server):
    body = {"model": "m", "input": ["a cat", "a dog"], "encoding_format": "float"}
    response = httpx.post(f"{default_server.base_url}/v1/embeddings", json=body, timeout=30)
    assert response.status_code == 200
    payload = response.json()
    assert payload["object"] == "list" and [d["index"] for d in payload["data"]] == [0, 1]
    for item in payload["data"]:
        assert len(item["embedding"]) == 384 and all(isinstance(x, float) for x in item["embedding"])
        assert abs(np.linalg.norm(item["embedding"]) - 1) < 1e-5


def test_explicit_base64_is_little_endian_float32(client):
    as_float = client.embeddings.create(model="m", input=["same text"], encoding_format="float")
    as_b64 = client.embeddings.create(model="m", input=["same text"], encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(as_b64.data[0].embedding), dtype="<f4")  # left encoded when asked
    np.testing.assert_array_equal(decoded, _vectors(as_float)[0])


def test_token_id_inputs_equal_text_inputs(client, minilm, st_model_factory):
    tokenizer = st_model_factory(minilm).tokenizer
    texts = ["hello world", "token ids travel as raw arrays"]
    ids = [tokenizer(t)["input_ids"] for t in texts]
    by_text = _vectors(client.embeddings.create(model="m", input=texts))
    one = client.embeddings.create(model="m", input=ids[0])
    many = client.embeddings.create(model="m", input=ids)
    assert_close_vectors(_vectors(one), by_text[:1], 0.999999)
    assert_close_vectors(_vectors(many), by_text, 0.999999)
    assert many.usage.prompt_tokens == sum(len(x) for x in ids)


def test_models_and_model_info(default_server, minilm):
    models = httpx.get(f"{default_server.base_url}/v1/models").json()
    assert models["data"][0]["id"] == minilm and models["data"][0]["max_model_len"] == 256
    info = httpx.get(f"{default_server.base_url}/get_model_info").json()
    assert info["model_path"] == minilm and info["is_generation"] is False and info["pooling"] == "mean"


def test_cls_model_with_auto_truncate_matches_reference(cls_matryoshka_server, bge_style_cls, st_model_factory):
    client = OpenAI(base_url=f"{cls_matryoshka_server.base_url}/v1", api_key="x")
    texts = varied_texts(30)  # includes paragraphs beyond 256 tokens: truncated like sentence-transformers
    response = client.embeddings.create(model="bge-test", input=texts)
    reference_model = st_model_factory(bge_style_cls)
    assert reference_model.max_seq_length == 256  # truncates where the server does
    assert_close_vectors(_vectors(response), reference_model.encode(texts, convert_to_numpy=True))
    assert response.model == "bge-test"
    tokenizer = reference_model.tokenizer
    assert max(len(tokenizer(t)["input_ids"]) for t in texts) > 256, "some texts must need truncating"
    truncated = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    assert response.usage.prompt_tokens == sum(len(ids) for ids in truncated)  # counts the tokens that ran
