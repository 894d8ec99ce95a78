"""GET /metrics parses as Prometheus text and moves with traffic; embeddings responses carry TEI's timing headers."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.wait import wait_until

TIMING_HEADERS = ("x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time")


def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels), parsed by prometheus-client's own parser."""
    response = httpx.get(f"{server.base_url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def base_url(preset_server) -> str:
    return preset_server.base_url


def embed(base_url: str, texts: list[str]) -> httpx.Response:
    body = {"input": texts, "encoding_format": "float"}
    response = httpx.post(f"{base_url}/v1/embeddings", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_counters_and_histograms_move_with_traffic(preset_server, base_url):
    before = scrape(preset_server)
    requests = [["a cat sat on the mat"], ["one", "two", "three"], ["the quick brown fox jumps over the lazy dog"]]
    responses = [embed(base_url, texts) for texts in requests]
    bad = httpx.post(f"{base_url}/v1/embeddings", json={"input": ""}, timeout=30)
    assert bad.status_code == 400
    httpx.get(f"{base_url}/no/such/route", timeout=10)
    after = scrape(preset_server)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    num_inputs = sum(len(texts) for texts in requests)
    num_tokens = sum(r.json()["usage"]["prompt_tokens"] for r in responses)
    assert delta("embedserve_requests_total", route="/v1/embeddings", status="200") == 3
    assert delta("embedserve_requests_total", route="/v1/embeddings", status="400") == 1
    assert delta("embedserve_requests_total", route="unmatched", status="404") == 1
    assert delta("embedserve_request_duration_seconds_count", route="/v1/embeddings") == 4
    for phase in ("tokenization", "queue", "inference"):
        assert delta(f"embedserve_{phase}_duration_seconds_count") == 3, phase  # the 400 never reached the engine
    assert delta("embedserve_inference_duration_seconds_sum") > 0
    assert delta("embedserve_prompt_tokens_total") == num_tokens
    assert delta("embedserve_embedded_inputs_total") == num_inputs
    # Each request ran in its own forward (sent one after another), and every forward is reported.
    assert delta("embedserve_batch_inputs_count") == 3 and delta("embedserve_batch_inputs_sum") == num_inputs
    assert delta("embedserve_batch_tokens_sum") == num_tokens
    assert delta("embedserve_batch_forward_duration_seconds_count") == 3
    assert value(after, "embedserve_forward_tokens_per_second") > 0
    assert value(after, "embedserve_requests_in_flight") == 0
    assert value(after, "embedserve_queue_inputs") == 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_embeddings_responses_carry_tei_timing_headers(preset_server, base_url):
    response = embed(base_url, ["timing headers", "as text-embeddings-inference sends them"])
    times = {name: response.headers[name] for name in TIMING_HEADERS}
    assert all(re.fullmatch(r"\d+", v) for v in times.values()), times  # whole milliseconds
    total, tokenize, queue, inference = (int(times[name]) for name in TIMING_HEADERS)
    assert tokenize + queue + inference <= total + 3  # each header rounds down; phases fit in the whole
    assert response.headers["x-compute-tokens"] == str(response.json()["usage"]["prompt_tokens"])
    assert response.headers["x-compute-type"] == "cpu"
    rid = response.headers["x-request-id"]
    wait_until(lambda: rid in preset_server.log(), timeout=5, message="the request's log line")
    line = next(line for line in preset_server.log().splitlines() if rid in line)
    assert "POST /v1/embeddings" in line and "status=200" in line and "inputs=2" in line
    assert f"tokens={response.headers['x-compute-tokens']}" in line and "inference_ms=" in line


def test_a_request_split_across_forwards_counts_each_forward(preset_server, base_url):
    """More inputs than one batch holds: several forwards for one request, all reported."""
    max_inputs = 256  # the preset's max_running_requests
    before = scrape(preset_server)
    embed(base_url, [f"text number {i}" for i in range(max_inputs + 10)])
    after = scrape(preset_server)
    forwards = value(after, "embedserve_batch_inputs_count") - value(before, "embedserve_batch_inputs_count")
    assert forwards == 2
    assert value(after, "embedserve_batch_inputs_sum") - value(before, "embedserve_batch_inputs_sum") == max_inputs + 10


def test_stats_and_metrics_read_one_store(preset_server, base_url):
    """/stats counts from the Prometheus registry, and the scheduler's counters reach /metrics from its shared memory."""
    embed(base_url, ["one store"])
    missing = httpx.post(f"{base_url}/v1/embeddings", json={"input": []}, timeout=30)
    assert missing.status_code == 400
    encoded = httpx.post(f"{base_url}/encode", json={"text": "counted too"}, timeout=30)
    assert encoded.status_code == 200, encoded.text
    samples, stats = scrape(preset_server), preset_server.stats()
    by_status: dict[str, float] = {}
    for route in ("/v1/embeddings", "/encode", "/tokenize"):
        for status in ("200", "400"):
            by_status[status] = by_status.get(status, 0) + value(samples, "embedserve_requests_total", route=route, status=status)  # fmt: skip
    assert stats["responses_by_status"]["200"] == by_status["200"] >= 2
    assert stats["responses_by_status"]["400"] >= by_status["400"] >= 1  # plus other routes' 400s
    # The scheduler may still be writing its counters after the answer left: read them around the scrape.
    engine_before, samples, engine_after = stats["engine"], scrape(preset_server), preset_server.stats()["engine"]
    for name in ("inputs_done", "batches_done"):
        exported = value(samples, f"embedserve_scheduler_{name}_total", replica="0")
        assert engine_before[name] <= exported <= engine_after[name] and exported >= 2, name
    assert value(samples, "embedserve_scheduler_queued_inputs", replica="0") == 0
