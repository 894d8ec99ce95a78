"""Real servers, launched once per module, shared by the HTTP tests."""

from __future__ import annotations

import json

import pytest

from tests.support.launch import RunningServer


@pytest.fixture(scope="module")
def default_server():
    """The quick start's server: no --model-path, so the embedded all-MiniLM-L6-v2."""
    server = RunningServer(["--is-embedding"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cls_matryoshka_server(bge_style_cls):
    overrides = json.dumps({"matryoshka_dimensions": [64, 128, 256]})
    server = RunningServer(
        ["--model-path", bge_style_cls, "--is-embedding", "--allow-auto-truncate",
         "--json-model-override-args", overrides, "--served-model-name", "bge-test"]
    )  # fmt: skip
    yield server
    server.stop()
