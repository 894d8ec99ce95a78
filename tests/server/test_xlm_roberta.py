"""XLM-RoBERTa through a real server: an XLMRobertaModel embedder equals SentenceTransformer (positions from the padding
index, pooling and normalization from the folder), an XLMRobertaForSequenceClassification reranker equals CrossEncoder,
and each refuses the other's task."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch

from tests.support.compare import assert_close_vectors, cosine_per_row
from tests.support.encoder_models import build_xlm_roberta_embedder, build_xlm_roberta_reranker
from tests.support.errors import assert_error_envelope
from tests.support.launch import RunningServer
from tests.support.texts import mixed_length_batch, varied_texts

# A literal <pad> is the padding id: transformers gives it the padding position and shifts the tokens after it.
TEXTS = [*varied_texts(30, long_words=60), "before <pad> after", "<pad><pad> two pads first"]
QUERY = "Where is the capital of France?"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> str:
    return build_xlm_roberta_embedder(tmp_path_factory.mktemp("models") / "xlmr-embedder")


@pytest.fixture(scope="module")
def reranker(tmp_path_factory) -> str:
    return build_xlm_roberta_reranker(tmp_path_factory.mktemp("models") / "xlmr-reranker")


@pytest.fixture(scope="module")
def embedder_server(embedder):
    with RunningServer(["--model-path", embedder, "--is-embedding"]) as running:
        yield running


@pytest.fixture(scope="module")
def reranker_server(reranker):
    with RunningServer(["--model-path", reranker, "--is-embedding", "--allow-auto-truncate"]) as running:
        yield running


def embed(server, texts: list[str]) -> np.ndarray:
    response = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": texts}, timeout=60)
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]])


def score(server, query: str, documents: list[str]) -> np.ndarray:
    response = httpx.post(f"{server.base_url}/v1/score", json={"text_1": query, "text_2": documents}, timeout=60)
    assert response.status_code == 200, response.text
    return np.array([item["score"] for item in response.json()["data"]])


def test_fixture_is_sensitive_to_the_text_and_to_positions(embedder, st_model_factory):
    model = st_model_factory(embedder)
    vectors = model.encode(TEXTS[:12])
    similarity = vectors @ vectors.T
    assert similarity[~np.eye(12, dtype=bool)].max() < 0.99, "different texts must get clearly different vectors"
    # Positions matter: the same ids at positions counted from 0 instead of padding_idx + 1 give another vector.
    encoded = model.tokenizer(TEXTS[3], return_tensors="pt")
    transformer = model[0].model
    with torch.inference_mode():
        right = transformer(**encoded).last_hidden_state.mean(1)
        shifted = torch.arange(encoded["input_ids"].shape[1])[None]
        wrong = transformer(**encoded, position_ids=shifted).last_hidden_state.mean(1)
    assert cosine_per_row(right.numpy(), wrong.numpy())[0] < 0.999


def test_vectors_equal_sentence_transformers(embedder_server, embedder, st_model_factory):
    model = st_model_factory(embedder)
    assert model.tokenizer("before <pad> after")["input_ids"].count(1) == 1, "the fixture must hold a padding id"
    assert_close_vectors(embed(embedder_server, TEXTS), model.encode(TEXTS))


def test_a_text_alone_embeds_as_inside_a_mixed_concurrent_batch(embedder_server):
    texts = [t for t in mixed_length_batch(60, seed=6) if len(t.split()) <= 60][:24]
    alone = np.concatenate([embed(embedder_server, [t]) for t in texts[:6]])
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: embed(embedder_server, texts[i::4]), range(4)))
    together = np.array([answers[i % 4][i // 4] for i in range(6)])
    assert cosine_per_row(alone, together).min() >= 0.99999 and np.abs(alone - together).max() < 1e-5


def test_an_embedder_cannot_rerank(embedder_server):
    response = httpx.post(f"{embedder_server.base_url}/v1/rerank", json={"query": "q", "documents": ["a"]}, timeout=10)
    assert_error_envelope(response, 400, "is an embedding model")


@pytest.fixture(scope="module")
def cross_encoder(reranker):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(reranker, device="cpu", max_length=128)  # the server's context: 130 positions less 2


def test_reranker_scores_equal_cross_encoder(reranker_server, cross_encoder):
    documents = TEXTS[:20]
    expected = cross_encoder.predict([(QUERY, d) for d in documents])
    assert np.ptp(expected) > 0.02, "different documents must get clearly different scores"
    actual = score(reranker_server, QUERY, documents)
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    assert list(np.argsort(-actual, kind="stable")) == list(np.argsort(-expected, kind="stable"))
    response = httpx.post(f"{reranker_server.base_url}/v1/rerank", json={"query": QUERY, "documents": documents})
    assert [r["index"] for r in response.json()["results"]] == list(np.argsort(-expected, kind="stable"))


def test_auto_truncate_cuts_the_document_never_the_query(reranker_server, cross_encoder):
    long_document = " ".join(mixed_length_batch(6, seed=7))
    assert len(cross_encoder.tokenizer(QUERY, long_document)["input_ids"]) > 128
    # CrossEncoder truncates the longest part first: with a short query that is the document alone, as here.
    expected = cross_encoder.predict([(QUERY, long_document)])
    assert abs(score(reranker_server, QUERY, [long_document])[0] - expected[0]) < 1e-4
    response = httpx.post(
        f"{reranker_server.base_url}/v1/rerank", json={"query": long_document * 2, "documents": ["a"]}, timeout=10
    )
    assert assert_error_envelope(response, 400, "shorten the query")["param"] == "query"


def test_a_reranker_cannot_embed(reranker_server):
    response = httpx.post(f"{reranker_server.base_url}/v1/embeddings", json={"input": "a"}, timeout=10)
    assert_error_envelope(response, 400, "XLMRobertaForSequenceClassification) is a reranker")
