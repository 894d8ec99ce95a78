"""The issue-7 benchmark runs end to end on a small corpus and reports every figure docs/benchmarks.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`


def test_bench_vs_library_reports_throughput_latency_and_idle_cpu(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_vs_library.py", "--num-texts", "40", "--repeats", "1", "--concurrency", "8",
         "--latency-requests", "5", "--idle-seconds", "1", "--output", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["texts"] == 40 and report["tokens"] > 40 * 5
    for name in ("library", "fp32", "bf16"):
        assert len(report["runs_tokens_per_s"][name]) == 1 and report["median_tokens_per_s"][name] > 0
    for name in ("fp32", "bf16"):
        latency = report["short_input_latency_ms"][name]
        assert 0 < latency["p50"] <= latency["p99"] and len(latency["p50_runs"]) == 1
        assert report["idle_cores_busy"][name] < 0.5  # no spinning loop keeps a core busy
