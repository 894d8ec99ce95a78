"""The tokenizer benchmark times both paths on short and realistic texts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`


def test_bench_tokenizer_reports_both_paths():
    proc = subprocess.run(
        [sys.executable, "scripts/bench_tokenizer.py", "--num-texts", "30"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["texts"] for r in rows] == ["short", "realistic"]
    assert all(r["transformers_call_us"] > 0 and r["rust_direct_us"] > 0 for r in rows)
