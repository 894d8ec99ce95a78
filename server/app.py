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
from processes.heartbeat import ReplicaHeartbeats
from server.admission import Ticket
from server.args import ServerArgs
from server.disconnect import run_unless_disconnected
from server.embedding_pipeline import EmbedOutcome, run_embedding
from server.engine_client import EngineClient
from server.errors import APIError, error_response
from server.metrics import ServerMetrics, install_metrics
from server.prompts import select_prompt
from server.protocol import check_dimensions, check_encoding_format, decode_embedding_request, parse_inputs
from server.reliability import Reliability
from server.reliability_routes import install_reliability
from server.request_limits import check_input_sizes, read_body
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
    heartbeat: ReplicaHeartbeats | None = None  # each replica's scheduler progress, shared memory
    reliability: Reliability = field(init=False)

    def __post_init__(self) -> None:
        self.reliability = Reliability(self.args, self.engine, self.heartbeat)


def build_app(state: FrontendState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.engine.start()
        for hook in state.on_startup:
            hook()
        yield
        await state.engine.stop()

    app = FastAPI(title="embedserve", lifespan=lifespan)
    _install_error_handlers(app, state)
    install_reliability(app, state)
    args = state.args

    @app.post("/v1/embeddings")
    async def create_embeddings(request: Request) -> Response:
        started = time.perf_counter()
        # Admission first: a refused request costs no body read, no decoding and no tokenizing.
        with state.reliability.admission.admit() as ticket:
            body = await read_body(request, args.max_request_bytes, ticket)
            outcome = await run_unless_disconnected(request.receive, embed(request, started, body, ticket))
        response = outcome.response
        state.reliability.stats.count_response(response.status)
        headers = outcome.headers(state.engine_info.get("device", args.device))
        return Response(response.body, response.status, headers, media_type="application/json")

    async def embed(request: Request, started: float, body: bytes, ticket: Ticket) -> EmbedOutcome:
        req = decode_embedding_request(body)
        encoding_format = check_encoding_format(req.encoding_format)
        dimensions = check_dimensions(req.dimensions, state.model_config)
        items = parse_inputs(req.input, multimodal=state.multimodal is not None)
        check_input_sizes(items, args.max_inputs_per_request, args.max_input_chars)
        prompt = select_prompt(req.prompt_name, args.default_prompt_name, state.model_config.st_info)
        return await run_embedding(state, request, started, items, encoding_format, dimensions, prompt, ticket)

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
        problem = state.reliability.health_problem()
        if problem is not None:
            return error_response(f"unhealthy: {problem}", 503)
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


def _install_error_handlers(app: FastAPI, state: FrontendState) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        state.reliability.stats.count_response(exc.status)
        return error_response(exc.message, exc.status, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(f"invalid request: {exc.errors()}", 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(str(exc.detail), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(f"internal error: {type(exc).__name__}: {exc}", 500)
