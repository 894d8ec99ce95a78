"""The load generator runs a small sweep against a launched server and reports real tokens and latencies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.launch import REPO_ROOT, RunningServer


@pytest.mark.slow  # runs the load generator end to end: `make test-slow`
def test_bench_serving_sweep_reports_json_and_plot(tmp_path):
    server = RunningServer(["--is-embedding", "--allow-auto-truncate"])
    try:
        out, plot = tmp_path / "sweep.json", tmp_path / "sweep.png"
        proc = subprocess.run(
            [sys.executable, "scripts/bench_serving.py", "--url", f"{server.base_url}/v1/embeddings",
             "--concurrency", "1", "4", "--num-requests", "12", "--warmup-requests", "2", "--num-texts", "50",
             "--encoding-format", "base64", "--output", str(out), "--plot", str(plot)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        results = json.loads(out.read_text())
        assert [r["concurrency"] for r in results] == [1, 4]
        for r in results:
            assert r["requests"] == 12 and r["errors"] == {} and r["tokens"] > 12 * 5
            assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
        assert plot.stat().st_size > 1000
    finally:
        server.stop()


def test_bench_serving_refuses_non_loopback_targets():
    proc = subprocess.run(
        [sys.executable, "scripts/bench_serving.py", "--url", "http://192.0.2.1:30000/v1/embeddings"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and "loopback" in proc.stderr
