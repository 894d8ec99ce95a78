"""The one polling helper: wait for a real condition instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "the condition",
) -> T:
    """Call `condition` until it returns something truthy and return that; raise TimeoutError after `timeout` s.

    `message` names what was awaited (a callable is called only on failure, e.g. to attach a log tail).
    `condition` may raise to give up early, e.g. when the process it watches has died.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout}s waiting for {text}")
        time.sleep(interval)
