"""The in-process A/B scripts: pooled rows against every row, and a forward beside a core-taking spinner."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`


def test_bench_pooled_rows_reports_both_settings(bge_style_cls):
    proc = subprocess.run(
        [sys.executable, "scripts/bench_pooled_rows.py", "--model-path", bge_style_cls, "--dtype", "float32",
         "--texts", "40", "--batch-tokens", "256", "--threads", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["pooling"] == "cls" and report["batches"] > 2 and report["tokens"] > 500
    assert report["every_row_tokens_per_s"] > 0 and report["pooled_rows_tokens_per_s"] > 0 and report["speedup"] > 0


def test_bench_pooled_rows_refuses_mean_pooling(minilm):
    proc = subprocess.run(
        [sys.executable, "scripts/bench_pooled_rows.py", "--model-path", minilm, "--texts", "4"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "mean pooling reads every row" in proc.stderr


def test_bench_core_contention_reports_alone_and_beside_the_spinner(minilm):
    proc = subprocess.run(
        [sys.executable, "scripts/bench_core_contention.py", "--model-path", minilm, "--dtype", "float32",
         "--texts", "40", "--batch-tokens", "256", "--batches-per-round", "2", "--rounds", "1", "--threads", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert len(report["alone_tokens_per_s"]) == len(report["beside_spinner_tokens_per_s"]) == 1
    assert report["spinner_cores"] == 0.1 and report["change"] > -1
