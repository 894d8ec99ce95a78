"""Typed msgpack-over-ZMQ channels, so no business logic touches a socket."""

from __future__ import annotations

from types import UnionType
from typing import Generic, TypeVar

import msgspec
import zmq
import zmq.asyncio

T = TypeVar("T")


def _socket(context: zmq.Context, kind: int, address: str, bind: bool) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    # No high-water mark: queues are bounded by the frontend's admission limits, not by dropped sends.
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    if bind:
        sock.bind(address)
    else:
        sock.connect(address)
    return sock


class PushChannel(Generic[T]):
    def __init__(self, context: zmq.Context, address: str, bind: bool = False):
        self._sock = _socket(context, zmq.PUSH, address, bind)
        self._encoder = msgspec.msgpack.Encoder()

    def send(self, message: T) -> None:
        self._sock.send(self._encoder.encode(message), copy=False)

    def close(self) -> None:
        self._sock.close()


class PullChannel(Generic[T]):
    def __init__(self, context: zmq.Context, address: str, message_type: type[T] | UnionType, bind: bool = True):
        self._sock = _socket(context, zmq.PULL, address, bind)
        self._decoder = msgspec.msgpack.Decoder(message_type)

    def recv(self) -> T:
        """Block until a message arrives (the process sleeps; no spinning)."""
        return self._decoder.decode(self._sock.recv(copy=False).buffer)

    def recv_all(self, block: bool, timeout_s: float | None = None) -> list[T]:
        """Everything queued now; with `block`, first wait for at least one message, or `timeout_s` at most."""
        if block and timeout_s is not None and not self._sock.poll(int(timeout_s * 1000)):
            return []
        messages = [self.recv()] if block else []
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return messages
            messages.append(self._decoder.decode(frame.buffer))

    def close(self) -> None:
        self._sock.close()


class AsyncPushChannel(Generic[T]):
    def __init__(self, context: zmq.asyncio.Context, address: str, bind: bool = False):
        self._sock = _socket(context, zmq.PUSH, address, bind)
        self._encoder = msgspec.msgpack.Encoder()

    def send_nowait(self, message: T) -> None:
        self._sock.send(self._encoder.encode(message), flags=zmq.NOBLOCK, copy=False)

    def close(self) -> None:
        self._sock.close()


class AsyncPullChannel(Generic[T]):
    def __init__(
        self, context: zmq.asyncio.Context, address: str, message_type: type[T] | UnionType, bind: bool = True
    ):
        self._sock = _socket(context, zmq.PULL, address, bind)
        self._decoder = msgspec.msgpack.Decoder(message_type)

    async def recv(self) -> T:
        frame = await self._sock.recv(copy=False)  # type: ignore[misc]  # pyzmq types the asyncio recv as the sync one
        return self._decoder.decode(frame.buffer)

    def close(self) -> None:
        self._sock.close()
