"""The GPU check script runs end to end on the CPU (tiny shapes), so the GPU run is not its first run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`


def test_gpu_check_dry_run_prints_parity_and_throughput(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--dry-run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {(r["model"], r["dtype"]): r for r in report["rows"]}
    assert set(rows) == {(m, d) for m in ("bge-tiny", "qwen3-tiny") for d in ("float32", "bfloat16")}
    for (_, dtype), row in rows.items():
        assert row["min_cosine"] >= (0.99999 if dtype == "float32" else 0.999), row
        assert row["engine_tok_s"] > 0 and row["transformers_tok_s"] > 0
    assert "qwen3-tiny" in proc.stdout and "matmul peak" in proc.stdout
