"""Real servers shared by the HTTP tests: once per module, or once per session where several modules use one."""

from __future__ import annotations

import json

import pytest

from tests.support.launch import PRESETS, RunningServer


@pytest.fixture(scope="session")
def default_server():
    """The quick start's server: no --model-path, so the embedded all-MiniLM-L6-v2 (the errors and OpenAI-client
    tests share it; neither reads counters another test moves)."""
    server = RunningServer(["--is-embedding"])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cls_matryoshka_server(bge_style_cls):
    """A CLS-pooled Matryoshka model, shared by the Matryoshka and OpenAI-client tests."""
    overrides = json.dumps({"matryoshka_dimensions": [64, 128, 256]})
    server = RunningServer(
        ["--model-path", bge_style_cls, "--is-embedding", "--allow-auto-truncate",
         "--json-model-override-args", overrides, "--served-model-name", "bge-test"]
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="session")
def preset_server():
    """The MiniLM preset with one flag overridden on the command line, logging every request.

    Shared by the config, metrics, native-route and LangChain tests (one server instead of four); their
    assertions compare counters before and after their own traffic, so they do not depend on each other.
    """
    server = RunningServer(
        ["--config", str(PRESETS / "all-minilm-l6-v2.yaml"), "--served-model-name", "from-cli", "--log-requests"]
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def qwen3_embedding_server(tiny_qwen3_embedding):
    """A Qwen3-Embedding-shaped model with SGLang's Matryoshka override, defaulting to the `query` prompt."""
    overrides = json.dumps({"matryoshka_dimensions": [128, 256, 512, 1024, 1536]})
    server = RunningServer(
        ["--model-path", tiny_qwen3_embedding, "--is-embedding", "--json-model-override-args", overrides,
         "--default-prompt-name", "query"]
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smollm2_server(smollm2):
    """Real SmolLM2-135M weights served as an embedding model (last token, normalized), truncatable."""
    overrides = json.dumps({"matryoshka_dimensions": [64, 128, 256, 512]})
    server = RunningServer(["--model-path", smollm2, "--is-embedding", "--json-model-override-args", overrides])
    yield server
    server.stop()
