"""The in-process A/B scripts: pooled rows against every row, the attention kernel against SDPA, and a forward
beside a core-taking spinner."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.attention.cpu_kernel import unavailable_reason
from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`


def _run(script: str, model: str, flags: str) -> subprocess.CompletedProcess:
    """One of the A/B scripts on `model`, run as a user would from the checkout."""
    command = [sys.executable, f"scripts/{script}", "--model-path", model, *flags.split()]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _report(proc: subprocess.CompletedProcess) -> dict:
    """The JSON line a successful run prints last."""
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_bench_pooled_rows_reports_both_settings(bge_style_cls):
    proc = _run("bench_pooled_rows.py", bge_style_cls, "--dtype float32 --texts 40 --batch-tokens 256 --threads 1")
    report = _report(proc)
    assert report["pooling"] == "cls" and report["batches"] > 2 and report["tokens"] > 500
    assert report["every_row_tokens_per_s"] > 0 and report["pooled_rows_tokens_per_s"] > 0 and report["speedup"] > 0


def test_bench_pooled_rows_refuses_mean_pooling(minilm):
    proc = _run("bench_pooled_rows.py", minilm, "--texts 4")
    assert proc.returncode != 0 and "mean pooling reads every row" in proc.stderr


def test_bench_core_contention_reports_alone_and_beside_the_spinner(minilm):
    proc = _run(
        "bench_core_contention.py",
        minilm,
        "--dtype float32 --texts 40 --batch-tokens 256 --batches-per-round 2 --rounds 1 --threads 1",
    )
    report = _report(proc)
    assert len(report["alone_tokens_per_s"]) == len(report["beside_spinner_tokens_per_s"]) == 1
    assert report["spinner_cores"] == 0.1 and report["change"] > -1


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"AMX varlen kernel: {unavailable_reason()}")
def test_bench_attention_kernel_reports_both_ways(minilm):
    proc = _run("bench_attention_kernel.py", minilm, "--texts 40 --batch-tokens 256 --threads 1")
    report = _report(proc)
    assert report["dtype"] == "bfloat16" and report["batches"] > 2 and report["tokens"] > 500
    assert report["sdpa_groups_tokens_per_s"] > 0 and report["varlen_kernel_tokens_per_s"] > 0
    assert 0.999 < report["min_cosine"] <= 1.0  # two bf16 roundings of the same attention


def test_bench_attention_kernel_refuses_float32(minilm):
    proc = _run("bench_attention_kernel.py", minilm, "--dtype float32 --texts 4")
    assert proc.returncode != 0 and "does not run here" in proc.stderr
