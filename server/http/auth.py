"""`--api-key`: an ASGI middleware that requires `Authorization: Bearer KEY`, compared in constant time."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from server.http.errors import error_body

# Probes from orchestrators and load balancers carry no credentials.
OPEN_PATHS = frozenset({"/health", "/ready"})


class BearerAuthMiddleware:
    def __init__(self, app: ASGIApp, api_key: str):
        self.app = app
        self._key = api_key.encode()

    def _authorized(self, scope: Scope) -> bool:
        header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        # compare_digest takes the same time wherever the first difference is, so timing leaks nothing of the key.
        return hmac.compare_digest(token.strip(), self._key) and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(error_body("missing or invalid API key: send 'Authorization: Bearer <key>'", 401)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"www-authenticate", b"Bearer")]  # fmt: skip
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
