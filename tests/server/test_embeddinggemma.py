"""A tiny EmbeddingGemma through a real server: vectors with and without its prompts equal SentenceTransformer's, the
size it reports and validates is its last Dense module's, Matryoshka truncates after the Dense modules, and a text's
vector does not depend on its batch."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tests.support.compare import assert_alone_equals_concurrent_batches, assert_close_vectors
from tests.support.errors import assert_error_envelope
from tests.support.gemma_models import DENSE_SIZES
from tests.support.launch import RunningServer
from tests.support.texts import mixed_length_batch, varied_texts

TEXTS = varied_texts(16, long_words=80)
MATRYOSHKA = [16, DENSE_SIZES[-1]]


@pytest.fixture(scope="module")
def server(tiny_embeddinggemma):
    overrides = json.dumps({"matryoshka_dimensions": MATRYOSHKA})
    with RunningServer(
        ["--model-path", tiny_embeddinggemma, "--is-embedding", "--json-model-override-args", overrides]
    ) as s:
        yield s


def embed(server, texts: list[str], **options) -> np.ndarray:
    response = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": texts, **options}, timeout=60)
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]])


@pytest.mark.parametrize("prompt_name", [None, "query", "document"])
def test_vectors_equal_sentence_transformers_with_each_prompt(
    server, tiny_embeddinggemma, st_model_factory, prompt_name
):
    expected = st_model_factory(tiny_embeddinggemma).encode(TEXTS, prompt_name=prompt_name)
    options = {"prompt_name": prompt_name} if prompt_name else {}
    assert_close_vectors(embed(server, TEXTS, **options), expected)


def test_the_size_is_the_last_dense_modules_and_matryoshka_truncates_after_it(
    server, tiny_embeddinggemma, st_model_factory
):
    info = httpx.get(f"{server.base_url}/get_model_info", timeout=10).json()
    assert (info["embedding_dim"], info["pooling"]) == (DENSE_SIZES[-1], "mean")
    assert info["prompt_names"] == ["Classification", "document", "query"]
    full = st_model_factory(tiny_embeddinggemma).encode(TEXTS)
    truncated = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    assert_close_vectors(embed(server, TEXTS, dimensions=16), truncated)
    response = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "a", "dimensions": 64}, timeout=10)
    assert_error_envelope(response, 400, "dimensions")


def test_a_text_alone_embeds_as_inside_a_mixed_concurrent_batch(server):
    assert_alone_equals_concurrent_batches(lambda texts: embed(server, texts), mixed_length_batch(24, seed=8))


@pytest.mark.slow  # a second server: `make test-slow`
def test_two_tensor_parallel_ranks_equal_sentence_transformers(tiny_embeddinggemma, st_model_factory):
    # 4 query heads and 2 KV heads over 2 ranks; the Dense modules run whole on each rank
    with RunningServer(["--model-path", tiny_embeddinggemma, "--is-embedding", "--tp-size", "2"]) as tp2:
        assert_close_vectors(embed(tp2, TEXTS), st_model_factory(tiny_embeddinggemma).encode(TEXTS))
