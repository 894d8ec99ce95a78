"""Registers what makes the app hard to break: the API-key check, /ready, /stats and the disconnect handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from server.auth import BearerAuthMiddleware
from server.errors import error_response
from server.request_limits import ClientDisconnected

if TYPE_CHECKING:
    from server.app import FrontendState


def install_reliability(app: FastAPI, state: FrontendState) -> None:
    reliability = state.reliability
    if state.args.api_key:
        app.add_middleware(BearerAuthMiddleware, api_key=state.args.api_key, stats=reliability.stats)

    @app.get("/ready")
    async def ready() -> Response:
        problem = reliability.readiness_problem()
        if problem is not None:
            return error_response(f"not ready: {problem}", 503)
        return Response(status_code=200)

    @app.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(reliability.snapshot())

    @app.exception_handler(ClientDisconnected)
    async def client_disconnected(_: Request, exc: ClientDisconnected) -> Response:
        # Nobody will read this response; the work was already dropped.
        reliability.stats.requests_aborted_by_client += 1
        return Response(status_code=499)
