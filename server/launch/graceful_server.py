"""uvicorn's server with a graceful first signal: SIGTERM or Ctrl-C drains in-flight requests, a second one exits now."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

logger = logging.getLogger("embedserve")


class GracefulServer(uvicorn.Server):
    """On the first signal, run `drain()` while still serving (new requests get 503), then stop.

    uvicorn installs its own SIGTERM/SIGINT handler (this method) for the length of serve(); by
    default it stops accepting connections at once. Here the listening socket stays open during the
    drain so late clients get a clear 503 instead of a refused connection.
    """

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]]):
        super().__init__(config)
        self._drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        self._drain_task: asyncio.Task | None = None

    async def startup(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or not self.started:
            super().handle_exit(sig, frame)  # before serving began: uvicorn's own handling
            return
        if self._draining:
            logger.warning("signal %s again: stopping now without waiting", signal.Signals(sig).name)
            self.force_exit = self.should_exit = True
            return
        self._draining = True
        logger.info("signal %s: draining before shutdown (send it again to stop now)", signal.Signals(sig).name)
        # Signal handlers run between bytecodes on the loop's thread; hand the work to the loop itself.
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain()
        finally:
            self.should_exit = True
