"""SIGTERM drains: new requests get 503, in-flight ones finish (or fail with 503 at --shutdown-timeout), exit 0."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from tests.support.launch import RunningServer
from tests.support.wait import wait_until


def _send_in_background(url: str, bodies: list[dict]) -> tuple[list[threading.Thread], dict]:
    results: dict = {}

    def send(i: int, body: dict) -> None:
        results[i] = httpx.post(url, json=body, timeout=60)

    threads = [threading.Thread(target=send, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    return threads, results


def _wait_admitted(server: RunningServer, count: int) -> None:
    wait_until(lambda: server.stats()["engine_pending_requests"] >= count, 20, message="requests to reach the engine")


def test_sigterm_finishes_in_flight_requests_then_exits_0(minilm):
    server = RunningServer(["--model-path", minilm, "--shutdown-timeout", "60"])
    scheduler = server.child("scheduler")
    os.kill(scheduler.pid, signal.SIGSTOP)  # keep the requests in flight while the signal arrives
    try:
        bodies = [{"input": [f"request {i} text {j}" for j in range(i + 1)]} for i in range(5)]
        threads, results = _send_in_background(f"{server.base_url}/v1/embeddings", bodies)
        _wait_admitted(server, len(bodies))
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: server.stats()["draining"], 10, message="the server to start draining")
        assert server.proc.poll() is None, "the server exited with requests in flight"
        late = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "too late"}, timeout=10)
        assert late.status_code == 503 and "shutting down" in late.json()["error"]["message"]
        assert httpx.get(f"{server.base_url}/ready").status_code == 503
    finally:
        os.kill(scheduler.pid, signal.SIGCONT)
    for thread in threads:
        thread.join(timeout=60)
    assert [results[i].status_code for i in range(len(bodies))] == [200] * len(bodies)
    assert [len(results[i].json()["data"]) for i in range(len(bodies))] == [1, 2, 3, 4, 5]
    assert server.proc.wait(timeout=30) == 0
    assert server.leftover_processes() == []


def test_shutdown_timeout_fails_stragglers_with_503_and_exits_0():
    server = RunningServer(["--shutdown-timeout", "1"])
    scheduler = server.child("scheduler")
    os.kill(scheduler.pid, signal.SIGSTOP)  # these requests can never finish in time
    threads, results = _send_in_background(f"{server.base_url}/v1/embeddings", [{"input": "a"}, {"input": "b"}])
    _wait_admitted(server, 2)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=30)
    assert [results[i].status_code for i in range(2)] == [503, 503]
    assert "--shutdown-timeout" in results[0].json()["error"]["message"]
    assert server.proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 15
    assert server.leftover_processes() == []
