"""Processes: clean start and stop, and a dead child turns the server unhealthy instead of hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx

from tests.support.launch import REPO_ROOT, RunningServer


def test_sigterm_stops_every_process(minilm):
    server = RunningServer(["--model-path", minilm, "--is-embedding"])
    assert server.child("scheduler") and server.child("result")
    assert httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "hi"}).status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    assert server.leftover_processes() == []


def test_ctrl_c_stops_every_process():
    server = RunningServer(["--is-embedding"])
    assert server.stop(signal.SIGINT) == 0
    assert server.leftover_processes() == []


def test_killed_scheduler_fails_in_flight_requests_and_server_exits_nonzero():
    server = RunningServer(["--is-embedding", "--max-prefill-tokens", "512"])
    scheduler = server.child("scheduler")
    big_request = {"input": ["many words here " * 60] * 256}  # about 60k tokens: seconds of work on this CPU
    result: dict = {}

    def send() -> None:
        result["response"] = httpx.post(f"{server.base_url}/v1/embeddings", json=big_request, timeout=60)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.5)
    os.kill(scheduler.pid, signal.SIGKILL)
    sender.join(timeout=30)
    assert not sender.is_alive(), "the in-flight request hung"
    assert result["response"].status_code == 503
    assert "scheduler" in result["response"].json()["error"]["message"]
    assert httpx.get(f"{server.base_url}/health").status_code == 503
    assert server.proc.wait(timeout=30) != 0
    assert server.leftover_processes() == []


def test_console_command_serves(minilm):
    console_command = os.path.join(os.path.dirname(sys.executable), "embedserve")
    server = RunningServer(["--model-path", minilm], command=[console_command, "serve"])
    assert httpx.post(f"{server.base_url}/v1/embeddings", json={"input": "hi"}).status_code == 200
    assert server.stop() == 0


def test_unservable_model_path_exits_with_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "server.launch_server", "--model-path", str(tmp_path), "--port", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no config.json" in proc.stderr
