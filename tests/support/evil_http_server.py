"""A hostile HTTP server on 127.0.0.1: compression bombs, redirect chains, endless and slow bodies, wrong types.

It counts the connections it accepts, so a test can assert that the server under test never connected.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import zstandard

BOMB_BYTES = 256 * 1024 * 1024  # what each compressed body expands to


def _bombs() -> dict[str, bytes]:
    """Small bodies that expand to BOMB_BYTES of zeros, compressed chunk by chunk (never held expanded here)."""
    zeros = b"\0" * (16 * 1024 * 1024)
    gz = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    zst = zstandard.ZstdCompressor(level=3).compressobj()
    gz_parts, zst_parts = [], []
    for _ in range(BOMB_BYTES // len(zeros)):
        gz_parts.append(gz.compress(zeros))
        zst_parts.append(zst.compress(zeros))
    return {"gzip": b"".join(gz_parts) + gz.flush(), "zstd": b"".join(zst_parts) + zst.flush()}


class EvilServer:
    """`files` maps a path to (content type, bytes); the other endpoints are built in (see `_route`)."""

    def __init__(self, files: dict[str, tuple[str, bytes]]):
        bombs = _bombs()
        self.connections = 0
        counter = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                with counter:
                    outer.connections += 1
                super().setup()

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with contextlib.suppress(OSError):  # the client hung up, as it should on hostile bodies
                    self._route()

            def _route(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path in ("/gzip-bomb", "/zstd-bomb"):
                    kind = parts.path[1:5].rstrip("-")
                    self._send(200, bombs[kind], "image/png", {"Content-Encoding": kind})
                elif parts.path == "/redirect":  # /redirect?to=URL[&hops=N]: N hops here, then to URL
                    hops = int(query.get("hops", ["0"])[0])
                    target = query["to"][0]
                    if hops > 0:
                        target = f"/redirect?hops={hops - 1}&to={target}"
                    self._send(302, b"", "text/plain", {"Location": target})
                elif parts.path == "/endless":  # chunked, never ends
                    self._head(200, "image/png", {"Transfer-Encoding": "chunked"})
                    chunk = b"\0" * 65536
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                elif parts.path == "/slow":  # one byte a second, far below any limit in bytes
                    self._head(200, "image/png", {"Content-Length": "1000000"})
                    while True:
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                        time.sleep(1.0)
                elif parts.path in files:
                    content_type, body = files[parts.path]
                    self._send(200, body, content_type)
                else:
                    self._send(404, b"not found", "text/plain")

            def _head(self, status: int, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self._head(status, content_type, {"Content-Length": str(len(body)), **(headers or {})})
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
