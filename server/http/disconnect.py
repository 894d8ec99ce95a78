"""Notices a client that hangs up while its request waits, so the queued work can be dropped.

Starlette does not cancel a plain (non-streaming) handler when its client disconnects; the handler
would keep waiting and the engine would still run the work. Once the body is read, the next ASGI
`receive()` returns only when the connection closes, so we race it against the work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

from server.http.admission import ClientDisconnected

T = TypeVar("T")


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """The result of `work`; if the client leaves first, `work` is cancelled and ClientDisconnected raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Cancelling the work runs its cleanup (EngineClient sends AbortRequest to the scheduler).
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if task.cancelled() or not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientDisconnected
    return task.result()
