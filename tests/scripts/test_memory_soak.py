"""A short memory soak (scripts/soak.py): after a warm-up, the scheduler's resident memory stays flat."""

from __future__ import annotations

import pytest

from scripts.soak import is_clean, parse_args, run_soak

pytestmark = pytest.mark.slow

REQUESTS = 1000
WARMUP = 200


def test_scheduler_memory_stays_flat_under_mixed_load_with_aborts():
    argv = ["--requests", str(REQUESTS), "--concurrency", "64", "--abort-fraction", "0.1",
            "--warmup-requests", str(WARMUP), "--sample-every", "5", "--max-scheduler-growth", "0.1"]  # fmt: skip
    report = run_soak(parse_args(argv))
    assert is_clean(report), {k: v for k, v in report.items() if k != "memory_timeline"}
    assert report["ok"] + report["aborted"] == REQUESTS and report["aborted"] > 0
    timeline = report["memory_timeline"]
    assert len(timeline) >= 3 and all({"frontend", "scheduler", "result"} <= set(row) for row in timeline)
    assert report["scheduler_growth_after_warmup"] is not None
    assert any(row["done"] >= WARMUP for row in timeline[1:-1])  # samples were taken after the warm-up, mid-run
