"""Sends one request to a running server from a thread while checking that /health keeps answering within a
second, and measures how much the frontend's peak memory (VmHWM) grew meanwhile."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx

HEALTH_TIMEOUT = 1.0  # the bound: /health answers within a second while hostile input is handled


@dataclass
class Probe:
    response: httpx.Response
    peak_growth: int  # bytes the frontend's VmHWM grew during the request
    health_checks: int


def peak_rss(pid: int) -> int:
    """VmHWM of a process: its peak resident memory so far, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def probe(server, body: dict, timeout: float = 60.0) -> Probe:
    """POST `body` to /v1/embeddings of `server` (a RunningServer; its launcher process is the frontend)."""
    before = peak_rss(server.proc.pid)
    result: dict = {}

    def send() -> None:
        result["response"] = httpx.post(f"{server.base_url}/v1/embeddings", json=body, timeout=timeout)

    sender = threading.Thread(target=send)
    sender.start()
    checks = 0
    with httpx.Client(base_url=server.base_url, timeout=HEALTH_TIMEOUT) as client:
        while True:
            done = not sender.is_alive()
            health = client.get("/health")  # raises a timeout after HEALTH_TIMEOUT seconds
            assert health.status_code == 200, health.text
            checks += 1
            if done:
                break
            sender.join(0.05)
    sender.join()
    return Probe(result["response"], peak_rss(server.proc.pid) - before, checks)


def assert_error_envelope(response: httpx.Response, status_class: int = 4) -> dict:
    assert response.status_code // 100 == status_class, (response.status_code, response.text[:500])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == response.status_code
    return error
