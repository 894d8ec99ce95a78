"""The real FastAPI app for a model, built in the test's own process, its engine never started."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from openai import OpenAI
from starlette.testclient import TestClient

from engine.model_config import ModelConfig
from processes.ipc import IpcAddresses
from server.http.app import FrontendState, build_app
from server.http.engine_client import EngineClient
from server.inputs.tokenizer_manager import TokenizerManager
from server.launch.args import ServerArgs


@contextmanager
def inprocess_app(model_path: str, overrides: dict | None = None) -> Iterator[tuple[object, FrontendState]]:
    """(app, state): without the lifespan nothing connects to a scheduler, so only routes that need none answer.

    `overrides` stands for --json-model-override-args (e.g. Matryoshka sizes).
    """
    config = ModelConfig.load(model_path, overrides or {}, None, "auto", "cpu")
    ipc = IpcAddresses.create()
    try:
        tokenizer = TokenizerManager(config, False, False)
        state = FrontendState(ServerArgs(model_path=model_path), config, "m", tokenizer, EngineClient(ipc))
        yield build_app(state), state
    finally:
        ipc.remove()


def openai_client_of(client: TestClient) -> OpenAI:
    """The real OpenAI client, its requests answered by the in-process app behind `client`."""
    return OpenAI(base_url=f"{client.base_url}/v1", api_key="x", http_client=client, max_retries=0)
