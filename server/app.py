"""The FastAPI app: OpenAI's /v1/embeddings and /v1/models, /health, /get_model_info; native routes and metrics."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.model_config import ModelConfig
from server.args import ServerArgs
from server.embedding_pipeline import run_embedding
from server.engine_client import EngineClient
from server.errors import APIError, error_response
from server.metrics import ServerMetrics, install_metrics
from server.prompts import select_prompt
from server.protocol import check_dimensions, check_encoding_format, decode_embedding_request, parse_inputs
from server.routes_native import register_native_routes
from server.tokenizer_manager import TokenizerManager


@dataclass
class FrontendState:
    args: ServerArgs
    model_config: ModelConfig
    served_model_name: str
    tokenizer: TokenizerManager
    engine: EngineClient
    on_startup: list = field(default_factory=list)  # callables run once the event loop exists
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    engine_info: dict = field(default_factory=dict)  # what the scheduler reported when ready (device, backend)
    multimodal: Any = None  # server.multimodal.MultimodalProcessor for multimodal models


def build_app(state: FrontendState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.engine.start()
        for hook in state.on_startup:
            hook()
        yield
        await state.engine.stop()

    app = FastAPI(title="embedserve", lifespan=lifespan)
    _install_error_handlers(app)

    @app.post("/v1/embeddings")
    async def create_embeddings(request: Request) -> Response:
        started = time.perf_counter()
        req = decode_embedding_request(await request.body())
        encoding_format = check_encoding_format(req.encoding_format)
        dimensions = check_dimensions(req.dimensions, state.model_config)
        items = parse_inputs(req.input, multimodal=state.multimodal is not None)
        prompt = select_prompt(req.prompt_name, state.args.default_prompt_name, state.model_config.st_info)
        outcome = await run_embedding(state, request, started, items, encoding_format, dimensions, prompt)
        headers = outcome.headers(state.engine_info.get("device", state.args.device))
        return Response(outcome.response.body, outcome.response.status, headers, media_type="application/json")

    @app.get("/v1/models")
    async def list_models() -> JSONResponse:
        model = {
            "id": state.served_model_name,
            "object": "model",
            "created": 0,
            "owned_by": "embedserve",
            "root": state.model_config.model_path,
            "max_model_len": state.model_config.context_length,
        }
        return JSONResponse({"object": "list", "data": [model]})

    @app.get("/health")
    async def health() -> Response:
        if state.engine.dead_reason is not None:
            return error_response(f"unhealthy: {state.engine.dead_reason}", 503)
        return Response(status_code=200)

    @app.get("/get_model_info")
    async def model_info() -> JSONResponse:
        cfg = state.model_config
        return JSONResponse(
            {
                "model_path": cfg.model_path,
                "tokenizer_path": cfg.model_path,
                "served_model_name": state.served_model_name,
                "is_generation": False,
                "architecture": cfg.architecture,
                "pooling": cfg.pooling,
                "normalize": cfg.normalize,
                "embedding_dim": cfg.embedding_dim,
                "context_length": cfg.context_length,
                "matryoshka_dimensions": list(cfg.matryoshka_dimensions) if cfg.matryoshka_dimensions else None,
                "is_matryoshka": cfg.is_matryoshka,
                "dtype": cfg.dtype,
                "prompt_names": sorted(cfg.st_info.prompts),
            }
        )

    install_metrics(app, state)
    register_native_routes(app, state)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.message, exc.status, exc.param)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(f"invalid request: {exc.errors()}", 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(str(exc.detail), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(f"internal error: {type(exc).__name__}: {exc}", 500)
