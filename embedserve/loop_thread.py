"""An event loop of its own in a background thread, so blocking callers can drive the frontend's async code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str):
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result (or its exception) here."""
        return self.submit(coroutine).result()

    def cancel_tasks(self) -> None:
        """Cancel whatever still runs on the loop (a caller interrupted) and wait until it has unwound."""
        self.run(_cancel_other_tasks())

    def close(self) -> None:
        """Stop the loop and join its thread, and the worker threads `asyncio.to_thread` started on it."""
        if self.loop.is_closed():
            return
        self.cancel_tasks()
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _cancel_other_tasks() -> None:
    """Requests still in flight (a caller interrupted): cancelled, so none is left pending when the loop stops."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
