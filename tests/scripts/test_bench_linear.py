"""The linear-layer benchmark measures both paths and prints one JSON line per shape and dtype."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`


def test_bench_linear_reports_plain_and_packed_gflops():
    proc = subprocess.run(
        [sys.executable, "scripts/bench_linear.py", "--in-features", "64", "--out-features", "128",
         "--rows", "4", "32", "--seconds", "0.02"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["dtype"], r["rows"]) for r in rows] == [
        ("float32", 4), ("float32", 32), ("bfloat16", 4), ("bfloat16", 32)
    ]  # fmt: skip
    float32 = [r for r in rows if r["dtype"] == "float32"]
    assert all(r["plain_gflops"] > 0 and r["packed_gflops"] > 0 for r in float32)
