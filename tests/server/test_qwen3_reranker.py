"""Qwen3-Reranker through one real server started with its preset: probabilities equal the model card's recipe run
with transformers, with the default or a request's instruction, raw log-odds, truncation, batch invariance."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.errors import assert_error_envelope
from tests.support.launch import RunningServer
from tests.support.qwen3_reranker import PRESET, CardReference, build_tiny_qwen3_reranker
from tests.support.rerank import scores_alone_and_in_concurrent_batches
from tests.support.texts import mixed_length_batch, varied_texts

QUERY = "What is the capital of France?"
DOCUMENTS = [text for text in varied_texts(16, long_words=20) if text.strip()]
INSTRUCTION = "Given a question about geography, find the passages that name a city"
CONTEXT = 160  # small, so a long document is easy to write; the prompt alone is about 60 tokens


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return build_tiny_qwen3_reranker(tmp_path_factory.mktemp("models") / "qwen3-reranker")


@pytest.fixture(scope="module")
def server(folder):
    args = ["--config", str(PRESET), "--model-path", folder, "--context-length", str(CONTEXT)]
    with RunningServer(args) as running:
        yield running


@pytest.fixture(scope="module")
def card(folder) -> CardReference:
    return CardReference(folder, CONTEXT)


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=60)


def by_index(items: list[dict], key: str) -> np.ndarray:
    return np.array([item[key] for item in sorted(items, key=lambda item: item["index"])])


def test_fixture_is_sensitive_to_the_document_and_the_instruction(card):
    default = np.array(card.log_odds(QUERY, DOCUMENTS))
    assert np.ptp(default) > 0.5, "different documents must get clearly different scores"
    instructed = np.array(card.log_odds(QUERY, DOCUMENTS, INSTRUCTION))
    assert np.abs(instructed - default).max() > 0.1, "the instruction must move the scores"


def test_v1_rerank_equals_the_model_cards_probabilities_and_order(server, card):
    expected = np.array(card.probabilities(QUERY, DOCUMENTS))
    response = post(server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(np.argsort(-expected, kind="stable"))
    np.testing.assert_allclose(by_index(results, "relevance_score"), expected, atol=1e-4)


def test_raw_scores_are_the_yes_no_log_odds_on_every_route(server, card):
    expected = np.array(card.log_odds(QUERY, DOCUMENTS))
    rerank = post(server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS, "use_activation": False}).json()
    tei = post(server, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "raw_scores": True}).json()
    score = post(server, "/v1/score", {"text_1": QUERY, "text_2": DOCUMENTS, "use_activation": False}).json()
    np.testing.assert_allclose(by_index(rerank["results"], "relevance_score"), expected, atol=1e-4)
    np.testing.assert_allclose(by_index(tei, "score"), expected, atol=1e-4)
    np.testing.assert_allclose(by_index(score["data"], "score"), expected, atol=1e-4)


def test_a_requests_instruction_replaces_the_default(server, card):
    expected = np.array(card.probabilities(QUERY, DOCUMENTS, INSTRUCTION))
    rerank = post(server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS, "instruction": INSTRUCTION})
    np.testing.assert_allclose(by_index(rerank.json()["results"], "relevance_score"), expected, atol=1e-4)
    tei = post(server, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "instruction": INSTRUCTION}).json()
    np.testing.assert_allclose(by_index(tei, "score"), expected, atol=1e-4)
    # pairwise /v1/score: each pair its own query, all under the one instruction
    queries = [QUERY, "coffee", "a river in the mountains"]
    body = {"text_1": queries, "text_2": DOCUMENTS[:3], "instruction": INSTRUCTION}
    pairwise = by_index(post(server, "/v1/score", body).json()["data"], "score")
    expected_pairwise = [
        card.probabilities(q, [d], INSTRUCTION)[0] for q, d in zip(queries, DOCUMENTS[:3], strict=True)
    ]
    np.testing.assert_allclose(pairwise, expected_pairwise, atol=1e-4)


@pytest.mark.parametrize(
    "instruction, fragment",
    [("", "instruction is empty"), ("  ", "instruction is empty"), (5, "instruction must be a string")],
)
def test_a_bad_instruction_is_a_400(server, instruction, fragment):
    body = {"query": QUERY, "documents": ["a"], "instruction": instruction}
    assert assert_error_envelope(post(server, "/v1/rerank", body), 400, fragment)["param"] == "instruction"


def test_a_reranker_has_no_embeddings(server):
    assert_error_envelope(post(server, "/v1/embeddings", {"input": "hello"}), 400, "is a reranker")


def test_too_long_pairs_are_refused_or_lose_only_their_documents_end(server, card):
    long_document = " ".join(mixed_length_batch(8, seed=4))
    error = assert_error_envelope(
        post(server, "/v1/rerank", {"query": QUERY, "documents": ["short", long_document]}),
        400,
        f"context length of {CONTEXT}",
    )
    assert "documents[1] has" in error["message"]
    # cut to fit from the end, as the card's right truncation of the formatted text cuts the document
    body = {"query": QUERY, "texts": [long_document, "short"], "truncate": True, "raw_scores": True}
    truncated = post(server, "/rerank", body)
    assert truncated.status_code == 200, truncated.text
    np.testing.assert_allclose(by_index(truncated.json(), "score"), card.log_odds(QUERY, [long_document, "short"]), atol=1e-4)  # fmt: skip
    error = assert_error_envelope(
        post(server, "/rerank", {"query": long_document, "texts": ["a"], "truncate": True}), 400, "shorten the query"
    )
    assert error["param"] == "query"


def test_a_pair_alone_scores_as_inside_a_mixed_concurrent_batch(server):
    documents = [d for d in mixed_length_batch(60, seed=5) if len(d.split()) <= 40][:16]
    assert len(documents) == 16 and len({len(d) for d in documents}) > 5
    alone, together = scores_alone_and_in_concurrent_batches(server.base_url, QUERY, documents, num_alone=4)
    np.testing.assert_allclose(together, alone, atol=1e-6)
