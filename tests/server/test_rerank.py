"""A BERT cross-encoder served as a reranker: scores equal sentence-transformers' CrossEncoder.predict through the three
rerank routes, pairs batch like any input, too-long pairs follow the embedding rules, bad input is a 400."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch

from tests.server.test_metrics import scrape, value
from tests.support.encoder_models import build_bert_reranker
from tests.support.errors import assert_error_envelope
from tests.support.launch import RunningServer
from tests.support.rerank import scores_alone_and_in_concurrent_batches
from tests.support.texts import mixed_length_batch, varied_texts

QUERY = "What is the capital of France?"
DOCUMENTS = [text for text in varied_texts(24, long_words=30) if text.strip()]
CONTEXT = 128  # small, so a long document is easy to write


@pytest.fixture(scope="module")
def reranker(tmp_path_factory) -> str:
    return build_bert_reranker(tmp_path_factory.mktemp("models") / "bert-reranker")


@pytest.fixture(scope="module")
def server(reranker):
    with RunningServer(["--model-path", reranker, "--is-embedding", "--context-length", str(CONTEXT)]) as running:
        yield running


@pytest.fixture(scope="module")
def cross_encoder(reranker):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(reranker, device="cpu", max_length=CONTEXT)


def reference(cross_encoder, query: str, documents: list[str], raw: bool = False) -> np.ndarray:
    activation = torch.nn.Identity() if raw else None  # None: the folder's own (sigmoid)
    return cross_encoder.predict([(query, d) for d in documents], activation_fn=activation, batch_size=64)


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=60)


def test_fixture_is_sensitive_to_the_document_and_to_token_types(reranker, cross_encoder):
    logits = reference(cross_encoder, QUERY, DOCUMENTS, raw=True)
    assert np.ptp(logits) > 0.1, "different documents must get clearly different scores"
    # Token types matter: the same ids with every token in segment 0 score differently.
    model, tokenizer = cross_encoder.model, cross_encoder.tokenizer
    encoded = tokenizer(QUERY, DOCUMENTS[3], return_tensors="pt")
    with torch.inference_mode():
        right = model(**encoded).logits.item()
        encoded["token_type_ids"] = torch.zeros_like(encoded["token_type_ids"])
        all_zero = model(**encoded).logits.item()
    assert abs(right - all_zero) > 1e-2


def test_v1_rerank_equals_cross_encoder_scores_and_order(server, cross_encoder):
    expected = reference(cross_encoder, QUERY, DOCUMENTS)
    response = post(server, "/v1/rerank", {"model": "any", "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "model", "results", "usage"} and body["id"].startswith("rerank-")
    results = body["results"]
    assert [r["index"] for r in results] == list(np.argsort(-expected, kind="stable"))
    scores = np.array([r["relevance_score"] for r in sorted(results, key=lambda r: r["index"])])
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert all(r["document"] == {"text": DOCUMENTS[r["index"]]} for r in results)  # return_documents defaults on
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > len(DOCUMENTS)
    assert response.headers["x-compute-tokens"] == str(body["usage"]["total_tokens"])


def test_raw_logits_on_request(server, cross_encoder):
    expected = reference(cross_encoder, QUERY, DOCUMENTS, raw=True)
    rerank = post(server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS, "use_activation": False}).json()
    tei = post(server, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "raw_scores": True}).json()
    score = post(server, "/v1/score", {"text_1": QUERY, "text_2": DOCUMENTS, "use_activation": False}).json()
    by_index = lambda items, key: np.array([i[key] for i in sorted(items, key=lambda i: i["index"])])  # noqa: E731
    np.testing.assert_allclose(by_index(rerank["results"], "relevance_score"), expected, atol=1e-4)
    np.testing.assert_allclose(by_index(tei, "score"), expected, atol=1e-4)
    np.testing.assert_allclose(by_index(score["data"], "score"), expected, atol=1e-4)


def test_route_shapes_top_n_and_documents(server, cross_encoder):
    documents = DOCUMENTS[:6]
    expected = reference(cross_encoder, QUERY, documents)
    order = list(np.argsort(-expected, kind="stable"))
    as_objects = [{"text": d} for d in documents]
    top = post(server, "/v1/rerank", {"query": QUERY, "documents": as_objects, "top_n": 2, "return_documents": False})
    assert [set(r) for r in top.json()["results"]] == [{"index", "relevance_score"}] * 2
    assert [r["index"] for r in top.json()["results"]] == order[:2]
    everything = post(server, "/v1/rerank", {"query": QUERY, "documents": documents, "top_n": 0}).json()["results"]
    assert len(everything) == 6 and len(post(server, "/v1/rerank", {"query": QUERY, "documents": documents, "top_n": 99}).json()["results"]) == 6  # fmt: skip

    tei = post(server, "/rerank", {"query": QUERY, "texts": documents, "return_text": True}).json()
    assert [r["index"] for r in tei] == order and all(r["text"] == documents[r["index"]] for r in tei)
    assert set(post(server, "/rerank", {"query": QUERY, "texts": documents}).json()[0]) == {"index", "score"}

    score = post(server, "/v1/score", {"model": "m", "text_1": QUERY, "text_2": documents}).json()
    assert set(score) == {"id", "object", "created", "model", "data", "usage"} and score["object"] == "list"
    assert [d["index"] for d in score["data"]] == list(range(6)) and score["data"][0]["object"] == "score"
    np.testing.assert_allclose([d["score"] for d in score["data"]], expected, atol=1e-4)
    # one text_1 in a list scores against every text_2; lists of one length pair up item by item
    broadcast = post(server, "/v1/score", {"text_1": [QUERY], "text_2": documents}).json()["data"]
    np.testing.assert_allclose([d["score"] for d in broadcast], expected, atol=1e-4)
    queries = [QUERY, "coffee", "a river in the mountains"]
    pairwise = post(server, "/v1/score", {"text_1": queries, "text_2": documents[:3]}).json()["data"]
    expected_pairwise = cross_encoder.predict(list(zip(queries, documents[:3], strict=True)))
    np.testing.assert_allclose([d["score"] for d in pairwise], expected_pairwise, atol=1e-4)
    single = post(server, "/v1/score", {"text_1": QUERY, "text_2": documents[2]}).json()["data"]
    assert len(single) == 1 and abs(single[0]["score"] - expected[2]) < 1e-4


@pytest.mark.parametrize(
    "path, body, param, fragment",
    [
        ("/v1/rerank", {"documents": ["a"]}, "query", "query must be a string"),
        ("/v1/rerank", {"query": "  ", "documents": ["a"]}, "query", "empty or only whitespace"),
        ("/v1/rerank", {"query": "q", "documents": []}, "documents", "non-empty list"),
        ("/v1/rerank", {"query": "q", "documents": "a"}, "documents", "non-empty list"),
        ("/v1/rerank", {"query": "q", "documents": ["a", 3]}, "documents", "documents[1] must be a string"),
        ("/v1/rerank", {"query": "q", "documents": [{"txt": "a"}]}, "documents", "documents[0] must be a string or"),
        ("/v1/rerank", {"query": "q", "documents": [{"text": 5}]}, "documents", "documents[0].text must be a string"),
        ("/v1/rerank", {"query": "q", "documents": ["a", ""]}, "documents", "documents[1] is empty"),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": -1}, "top_n", "top_n must be at least 0"),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": "2"}, "top_n", "invalid request"),
        ("/rerank", {"query": "q"}, "texts", "texts must be a non-empty list"),
        ("/rerank", {"query": "q", "texts": ["a"], "truncation_direction": "up"}, "truncation_direction", "'left'"),
        ("/v1/score", {"text_1": ["a", "b"], "text_2": ["c", "d", "e"]}, "text_2", "lists of one length"),
        ("/v1/score", {"text_1": "a"}, "text_2", "text_2 must be a string"),
        ("/v1/score", {"text_1": "a", "text_2": "b", "instruction": "x"}, "instruction", "takes no instruction"),
    ],
)
def test_bad_input_is_a_400_in_openai_envelope(server, path, body, param, fragment):
    error = assert_error_envelope(post(server, path, body), 400, fragment)
    assert error["param"] == param


def test_limits_and_malformed_bodies_go_through_the_pipeline(server):
    response = httpx.post(f"{server.base_url}/v1/rerank", content=b"{not json", timeout=10)
    assert_error_envelope(response, 400, "not valid JSON")
    assert "x-request-id" in response.headers
    error = assert_error_envelope(post(server, "/rerank", {"query": "q", "texts": ["a"] * 3000}), 400, "--max-inputs")
    assert error["param"] == "texts"
    huge = "word " * 30_000
    error = assert_error_envelope(post(server, "/v1/rerank", {"query": huge, "documents": ["a"]}), 400, "characters")
    assert error["param"] == "query"


@pytest.mark.parametrize(
    ("path", "field_bodies"),
    [
        ("/v1/rerank", lambda text: {"query": "q", "documents": [text]}),
        ("/rerank", lambda text: {"query": "q", "texts": [text]}),
        ("/v1/score", lambda text: {"text_1": "q", "text_2": [text]}),
    ],
)
def test_every_rerank_route_has_the_body_and_text_limits(server, path, field_bodies):
    # past the default --max-request-bytes (2 MiB): a 413 before the body is parsed, whatever it holds
    oversized = field_bodies("x" * (2_097_152 + 1))
    assert_error_envelope(post(server, path, oversized), 413, "--max-request-bytes")
    # a document past --max-input-chars, inside the byte limit: a 400 before any tokenizing
    error = assert_error_envelope(post(server, path, field_bodies("word " * 25_000)), 400, "--max-input-chars")
    assert error["param"] in ("documents", "texts", "text_2")
    assert server.health().status_code == 200


def test_a_reranker_has_no_embeddings(server):
    for path, body in (("/v1/embeddings", {"input": "hello"}), ("/encode", {"text": "hello"})):
        assert_error_envelope(post(server, path, body), 400, "is a reranker")


def test_too_long_pairs_are_refused_or_lose_only_their_document(server, cross_encoder):
    long_document = " ".join(mixed_length_batch(8, seed=4))
    error = assert_error_envelope(
        post(server, "/v1/rerank", {"query": QUERY, "documents": ["short", long_document]}),
        400,
        "context length of 128",
    )
    assert error["param"] == "documents" and "documents[1] has" in error["message"]
    # TEI's per-request truncate: the document is cut to fit, the query kept, as CrossEncoder(max_length) does
    truncated = post(
        server, "/rerank", {"query": QUERY, "texts": [long_document], "truncate": True, "raw_scores": True}
    )
    assert truncated.status_code == 200, truncated.text
    expected = reference(cross_encoder, QUERY, [long_document], raw=True)
    assert abs(truncated.json()[0]["score"] - expected[0]) < 1e-4
    # a query that leaves no room is never cut
    error = assert_error_envelope(
        post(server, "/rerank", {"query": long_document, "texts": ["a"], "truncate": True}), 400, "shorten the query"
    )
    assert error["param"] == "query"


def test_a_pair_alone_scores_as_inside_a_mixed_concurrent_batch(server):
    documents = [d for d in mixed_length_batch(60, seed=5) if len(d.split()) <= 60][:24]  # within the context
    assert len(documents) == 24 and len({len(d) for d in documents}) > 5
    alone, together = scores_alone_and_in_concurrent_batches(server.base_url, QUERY, documents, num_alone=6)
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_the_pair_is_the_unit_of_batching(server):
    """A hundred short documents fit the CPU's token budget (2,048): one rerank request is one forward."""
    before = scrape(server)
    documents = [f"document number {i} about rivers" for i in range(100)]
    response = post(server, "/v1/rerank", {"query": QUERY, "documents": documents})
    assert response.status_code == 200 and len(response.json()["results"]) == 100
    after = scrape(server)
    assert value(after, "embedserve_batch_inputs_count") - value(before, "embedserve_batch_inputs_count") == 1
    assert value(after, "embedserve_batch_inputs_sum") - value(before, "embedserve_batch_inputs_sum") == 100


@pytest.mark.slow  # a variant of what a quicker test covers: `make test-slow`
def test_tensor_parallel_ranks_share_the_token_types(reranker, cross_encoder):
    """Two ranks over gloo: rank 0 broadcasts each batch's ids and token types; the scores are one process's."""
    expected = reference(cross_encoder, QUERY, DOCUMENTS, raw=True)
    with RunningServer(["--model-path", reranker, "--tp-size", "2", "--context-length", str(CONTEXT)]) as tp2:
        body = {"text_1": QUERY, "text_2": DOCUMENTS, "use_activation": False}
        scores = [d["score"] for d in post(tp2, "/v1/score", body).json()["data"]]
    np.testing.assert_allclose(scores, expected, atol=1e-4)
