"""The FastAPI app: OpenAI's /v1/embeddings and /v1/models, the rerank routes, /health, /get_model_info; native routes, metrics."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.model_config import ModelConfig
from processes.heartbeat import ReplicaHeartbeats
from server.http.auth import BearerAuthMiddleware
from server.http.engine_client import EngineClient
from server.http.errors import APIError, error_response, unexpected_error_response
from server.http.health import Health, install_health_routes
from server.http.log_safety import install_log_redaction
from server.http.metrics import ServerMetrics, install_metrics
from server.http.pipeline import add_pipeline_route
from server.http.routes_native import ENCODE_ROUTE, TOKENIZE_ROUTE, register_server_info
from server.http.routes_openai import EMBEDDINGS_ROUTE
from server.http.routes_rerank import RERANK_ROUTE, SCORE_ROUTE, TEI_RERANK_ROUTE
from server.http.server_stats import install_stats
from server.inputs.pair_tokenizer import PairTokenizer
from server.inputs.qwen3_reranker_pairs import Qwen3RerankerPairs
from server.inputs.tokenizer_manager import TokenizerManager
from server.launch.args import ServerArgs


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
    multimodal: Any = None  # server.inputs.multimodal.MultimodalProcessor for multimodal models
    pairs: PairTokenizer | Qwen3RerankerPairs | None = (
        None  # cross-encoders: how query-document pairs become model inputs
    )
    heartbeat: ReplicaHeartbeats | None = None  # each replica's scheduler progress, shared memory
    pipeline_paths: set[str] = field(default_factory=set)  # filled as the pipeline routes are added
    health: Health = field(init=False)

    def __post_init__(self) -> None:
        self.health = Health(self.args, self.engine, self.heartbeat)


def build_app(state: FrontendState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.engine.start()
        for hook in state.on_startup:
            hook()
        yield
        await state.engine.stop()

    install_log_redaction(state.args.api_key)
    app = FastAPI(title="embedserve", lifespan=lifespan)
    _install_error_handlers(app, state)
    if state.args.api_key:
        app.add_middleware(BearerAuthMiddleware, api_key=state.args.api_key)
    install_health_routes(app, state.health)
    install_stats(app, state)

    # Every route that embeds or tokenizes goes through the one pipeline (server/http/pipeline.py).
    for route in (EMBEDDINGS_ROUTE, ENCODE_ROUTE, TOKENIZE_ROUTE, RERANK_ROUTE, TEI_RERANK_ROUTE, SCORE_ROUTE):
        add_pipeline_route(app, state, route)

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
                "task": cfg.task,
            }
        )

    install_metrics(app, state)
    register_server_info(app, state)
    return app


def _install_error_handlers(app: FastAPI, state: FrontendState) -> None:
    """Errors of the routes outside the pipeline (the pipeline answers its own) in OpenAI's envelope."""

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.message, exc.status, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(f"invalid request: {exc.errors()}", 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(str(exc.detail), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(uuid.uuid4().hex, f"{request.method} {request.url.path}", exc)
