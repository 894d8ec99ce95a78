"""Polling a running server until something it reports becomes true."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """The first truthy value `predicate()` returns, polled every 50 ms; AssertionError naming `what` at `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
