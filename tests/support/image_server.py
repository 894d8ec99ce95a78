"""A real HTTP server on 127.0.0.1 serving test images, plus a slow, an oversized and a broken endpoint."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ImageServer:
    """`files` maps a URL path to bytes; /slow never finishes in time; /huge streams without a content-length."""

    def __init__(self, files: dict[str, bytes], slow_seconds: float = 5.0, huge_bytes: int = 0):

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                if self.path == "/slow":
                    time.sleep(slow_seconds)
                    self._send(200, files["/cat.png"])
                elif self.path == "/huge":
                    self.send_response(200)
                    self.send_header("content-type", "image/png")
                    self.end_headers()  # no content-length: the client must count
                    chunk = b"\0" * 65536
                    try:
                        for _ in range(huge_bytes // len(chunk) + 1):
                            self.wfile.write(chunk)
                    except OSError:
                        pass  # the client hung up once over its limit
                elif self.path in files:
                    self._send(200, files[self.path])
                else:
                    self._send(404, b"not found")

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the slow endpoint)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
