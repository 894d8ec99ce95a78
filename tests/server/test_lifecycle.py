"""Processes: clean start and stop, and a dead child turns the server unhealthy instead of hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from tests.support.launch import REPO_ROOT, RunningServer
from tests.support.wait import wait_until


@pytest.mark.slow  # a variant of what a quicker test covers: `make test-slow`
def test_console_command_serves_and_sigterm_stops_every_process(minilm):
    console_command = os.path.join(os.path.dirname(sys.executable), "embedserve")
    server = RunningServer(["--model-path", minilm, "--is-embedding"], command=[console_command, "serve"])
    assert server.child("scheduler") and server.child("result")
    assert httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "hi"}).status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    assert server.leftover_processes() == []


def test_console_command_takes_sglangs_flags_without_serve_and_ctrl_c_stops_every_process():
    console_command = os.path.join(os.path.dirname(sys.executable), "embedserve")
    server = RunningServer(["--is-embedding"], command=[console_command])
    assert server.stop(signal.SIGINT) == 0
    assert server.leftover_processes() == []


def test_killed_scheduler_fails_in_flight_requests_and_server_exits_nonzero():
    server = RunningServer(["--is-embedding", "--max-prefill-tokens", "512"])
    scheduler = server.child("scheduler")
    big_request = {"input": ["many words here " * 60] * 256}  # about 60k tokens: outlasts the poll below
    result: dict = {}

    def send() -> None:
        result["response"] = httpx.post(f"{server.base_url}/v1/embeddings", json=big_request, timeout=60)

    sender = threading.Thread(target=send)
    sender.start()
    # Kill it mid-request: once it has batched some of this request's inputs and still holds the rest.
    wait_until(lambda: server.stats()["engine"]["queued_inputs"] > 0, 30, message="the scheduler to start the request")
    os.kill(scheduler.pid, signal.SIGKILL)
    sender.join(timeout=30)
    assert not sender.is_alive(), "the in-flight request hung"
    assert result["response"].status_code == 503
    assert "scheduler" in result["response"].json()["error"]["message"]
    assert httpx.get(f"{server.base_url}/health").status_code == 503
    assert server.proc.wait(timeout=30) != 0
    assert server.leftover_processes() == []


def test_unservable_model_path_exits_with_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "server.launch_server", "--model-path", str(tmp_path), "--port", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no config.json" in proc.stderr
