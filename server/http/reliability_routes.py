"""Registers what makes the app hard to break beside the request pipeline: the API-key check, /ready and /stats."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from server.http.auth import BearerAuthMiddleware
from server.http.errors import error_response

if TYPE_CHECKING:
    from server.http.app import FrontendState


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
