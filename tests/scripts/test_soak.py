"""A short run of scripts/soak.py: concurrent mixed requests with client aborts; nothing lost, wrong or failed."""

from __future__ import annotations

import pytest

from scripts.soak import is_clean, parse_args, run_soak

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`

REQUESTS = 80


def test_short_soak_loses_nothing():
    # A queue bound below the concurrency exercises the 429-and-retry path too.
    argv = ["--requests", str(REQUESTS), "--concurrency", "12", "--abort-fraction", "0.2", "--num-texts", "22",
            "--server-arg=--max-queued-requests=8"]  # fmt: skip
    report = run_soak(parse_args(argv))
    assert is_clean(report), report
    assert report["ok"] + report["aborted"] == REQUESTS
    assert report["aborted"] > 0 and report["ok"] > REQUESTS // 2
    # Memory settles: the frontend ends within 100 MB of where it started.
    assert report["memory_mb_end"]["frontend"] - report["memory_mb_start"]["frontend"] < 100, report
