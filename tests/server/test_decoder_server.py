"""Decoder embedders through the OpenAI client: reference-equal vectors, tokenizer specials, prompts, Matryoshka."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from openai import BadRequestError, OpenAI
from transformers import AutoTokenizer

from tests.support.compare import assert_close_vectors
from tests.support.decoder_reference import transformers_last_token_vectors
from tests.support.launch import RunningServer
from tests.support.texts import mixed_length_batch, varied_texts

SGLANG_MATRYOSHKA_SIZES = [128, 256, 512, 1024, 1536]


@pytest.fixture(scope="module")
def qwen3_client(qwen3_embedding_server) -> OpenAI:
    return OpenAI(base_url=f"{qwen3_embedding_server.base_url}/v1", api_key="x")


@pytest.fixture(scope="module")
def smollm2_client(smollm2_server) -> OpenAI:
    return OpenAI(base_url=f"{smollm2_server.base_url}/v1", api_key="x")


def _embed(client: OpenAI, texts, **kwargs) -> np.ndarray:
    response = client.embeddings.create(model="m", input=texts, **kwargs)
    return np.array([d.embedding for d in response.data])


def test_tokenizer_appends_endoftext_and_usage_counts_it(qwen3_client, tiny_qwen3_embedding):
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3_embedding)
    ids = tokenizer("hello world")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[-1]) == "<|endoftext|>"
    response = qwen3_client.embeddings.create(model="m", input="hello world", extra_body={"prompt_name": "document"})
    assert response.usage.prompt_tokens == len(ids)


def test_server_default_prompt_equals_sentence_transformers_prompt_name(qwen3_client, tiny_qwen3_embedding, st_model_factory):  # fmt: skip
    texts = varied_texts(24, long_words=100)
    reference = st_model_factory(tiny_qwen3_embedding).encode(texts, prompt_name="query")
    assert_close_vectors(_embed(qwen3_client, texts), reference)  # --default-prompt-name query


def test_request_prompt_name_overrides_the_default(qwen3_client, tiny_qwen3_embedding, st_model_factory):
    model = st_model_factory(tiny_qwen3_embedding)
    texts = mixed_length_batch(12)
    served = _embed(qwen3_client, texts, extra_body={"prompt_name": "document"})
    assert_close_vectors(served, model.encode(texts, prompt_name="document"))
    assert_close_vectors(served, model.encode(texts))  # the document prompt is empty
    with_query = _embed(qwen3_client, texts, extra_body={"prompt_name": "query"})
    assert_close_vectors(with_query, model.encode(texts, prompt_name="query"))


def test_unknown_prompt_name_is_400_listing_the_prompts(qwen3_client):
    with pytest.raises(BadRequestError) as info:
        qwen3_client.embeddings.create(model="m", input="x", extra_body={"prompt_name": "passage"})
    assert info.value.status_code == 400
    assert info.value.body["param"] == "prompt_name"
    assert "available: document, query" in info.value.body["message"]


def test_model_info_reports_the_decoder(qwen3_embedding_server):
    info = httpx.get(f"{qwen3_embedding_server.base_url}/get_model_info").json()
    assert (info["architecture"], info["pooling"], info["normalize"]) == ("Qwen3Model", "last", True)
    assert info["prompt_names"] == ["document", "query"]


def test_unknown_default_prompt_name_fails_at_startup(tiny_qwen3_embedding):
    with pytest.raises(RuntimeError, match="--default-prompt-name 'passage' is not a prompt") as info:
        RunningServer(["--model-path", tiny_qwen3_embedding, "--default-prompt-name", "passage"])
    assert "exited with 2" in str(info.value)


def test_smollm2_served_equals_transformers_last_token(smollm2_client, smollm2):
    texts = varied_texts(6) + mixed_length_batch(4, seed=5)
    ids = AutoTokenizer.from_pretrained(smollm2)(texts)["input_ids"]
    assert_close_vectors(_embed(smollm2_client, texts), transformers_last_token_vectors(smollm2, ids))


@pytest.mark.parametrize("size", SGLANG_MATRYOSHKA_SIZES)
def test_each_listed_size_returns_that_many_unit_floats(qwen3_client, size):
    full = _embed(qwen3_client, "What is the capital of France?")[0]
    vec = _embed(qwen3_client, "What is the capital of France?", dimensions=size)[0]
    assert vec.shape == (size,)
    assert abs(np.linalg.norm(vec) - 1) < 1e-5
    np.testing.assert_allclose(vec, full[:size] / np.linalg.norm(full[:size]), atol=1e-6)


def test_batch_of_three_at_256(qwen3_client):
    vectors = _embed(qwen3_client, ["one", "two words", "and a third, longer input"], dimensions=256)
    assert vectors.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_no_dimensions_returns_the_full_vector(qwen3_client):
    assert _embed(qwen3_client, "hello").shape == (1, 1536)


@pytest.mark.parametrize(
    "size, fragment", [(100, "allowed values"), (0, "at least 1"), (-1, "at least 1"), (1537, "exceeds")]
)
def test_invalid_dimensions_are_400(qwen3_client, size, fragment):
    with pytest.raises(BadRequestError) as info:
        qwen3_client.embeddings.create(model="m", input="x", dimensions=size)
    assert info.value.status_code == 400
    assert fragment in info.value.body["message"]


@pytest.mark.parametrize("size", [None, 512, 256, 128, 64])
def test_semantic_order_survives_truncation_on_real_weights(smollm2_client, size):
    texts = [
        "The weather is sunny and warm today.",
        "It is going to rain heavily this afternoon.",
        "Quantum physics describes particles with wave functions.",
    ]
    kwargs = {} if size is None else {"dimensions": size}
    sun, rain, quantum = _embed(smollm2_client, texts, **kwargs)
    assert sun @ rain > max(sun @ quantum, rain @ quantum)
