"""Backpressure, cancellation and liveness on a real server with a small queue bound."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import httpx
import numpy as np
import psutil
import pytest

from tests.support.compare import assert_close_vectors
from tests.support.launch import RunningServer
from tests.support.texts import mixed_length_batch
from tests.support.wait import wait_until

MAX_QUEUED = 6
STALL_TIMEOUT = 2.0
# The frontend imports torch and transformers (hundreds of MB); the burst may add at most this much.
BURST_RSS_GROWTH_BOUND = 150 * 2**20


@pytest.fixture(scope="module")
def server(minilm):
    server = RunningServer(
        ["--model-path", minilm, "--max-queued-requests", str(MAX_QUEUED), "--max-prefill-tokens", "256",
         "--engine-stall-timeout", str(STALL_TIMEOUT)]
    )  # fmt: skip
    yield server
    assert server.stop() == 0


async def _burst(url: str, bodies: list[dict]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        return await asyncio.gather(*(client.post(url, json=body) for body in bodies))


def test_burst_beyond_the_queue_gets_429s_and_correct_answers(server, minilm, st_model_factory):
    texts = mixed_length_batch(24, seed=3)
    reference = st_model_factory(minilm).encode(texts, normalize_embeddings=True)
    # 120 requests at once, each with ~100 kB of body (about 12 MB in all), against a bound of 6.
    bodies = [{"input": [texts[(i + j) % len(texts)] for j in range(4)], "user": "x" * 100_000} for i in range(120)]
    frontend = psutil.Process(server.proc.pid)
    rss_before = frontend.memory_info().rss
    responses = asyncio.run(_burst(f"{server.base_url}/v1/embeddings", bodies))
    rss_after = frontend.memory_info().rss

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 1 and statuses.count(200) >= MAX_QUEUED
    for i, response in enumerate(responses):
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"
            error = response.json()["error"]
            assert error["type"] == "rate_limit_error" and error["code"] == 429
            continue
        got = np.array([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
        want = reference[[(i + j) % len(texts) for j in range(4)]]
        assert_close_vectors(got, want)
    assert rss_after - rss_before < BURST_RSS_GROWTH_BOUND, (rss_before, rss_after)
    stats = server.stats()
    assert stats["requests_rejected_overloaded"] == statuses.count(429)
    assert stats["admitted_requests"] == 0 and stats["admitted_tokens"] == 0
    assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_disconnected_clients_have_their_work_dropped(server):
    scheduler = server.child("scheduler")
    before = server.stats()
    os.kill(scheduler.pid, signal.SIGSTOP)  # hold the engine so the requests are still queued when clients leave
    try:

        def leave_early(i: int) -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{server.base_url}/v1/embeddings", json={"input": [f"text {i} {j}" for j in range(8)]},
                           timeout=httpx.Timeout(10, read=0.5))  # fmt: skip

        clients = [threading.Thread(target=leave_early, args=(i,)) for i in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        wait_until(lambda: server.stats()["requests_aborted_by_client"] == before["requests_aborted_by_client"] + 4,
                  message="the frontend to notice 4 disconnects")  # fmt: skip
    finally:
        os.kill(scheduler.pid, signal.SIGCONT)
    # The scheduler receives each request and its abort together and skips all 32 inputs.
    after = wait_until(
        lambda: (s := server.stats())["engine"]["inputs_dropped"] >= before["engine"]["inputs_dropped"] + 32 and s,
        message="the scheduler to drop the aborted inputs",
    )
    assert after["engine"]["inputs_dropped"] == before["engine"]["inputs_dropped"] + 32
    assert after["engine"]["inputs_done"] == before["engine"]["inputs_done"]  # none reached the model
    assert after["engine_pending_requests"] == 0 and after["admitted_requests"] == 0
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "still serving"}).status_code == 200


def test_stalled_engine_turns_health_503_until_it_moves(server):
    scheduler = server.child("scheduler")
    os.kill(scheduler.pid, signal.SIGSTOP)
    result: dict = {}
    sender = threading.Thread(
        target=lambda: result.update(r=httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "x"}, timeout=60))
    )
    try:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
        sender.start()
        unhealthy = wait_until(
            lambda: (r := httpx.get(f"{server.base_url}/health")).status_code == 503 and r,
            timeout=STALL_TIMEOUT + 10,
            message="/health to report the stall",
        )
        assert "has not finished a batch" in unhealthy.json()["error"]["message"]
        assert httpx.get(f"{server.base_url}/ready").status_code == 503
    finally:
        os.kill(scheduler.pid, signal.SIGCONT)
    sender.join(timeout=30)
    assert result["r"].status_code == 200
    assert httpx.get(f"{server.base_url}/health").status_code == 200
    assert httpx.get(f"{server.base_url}/ready").status_code == 200
