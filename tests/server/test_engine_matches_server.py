"""The in-process embedserve.Engine, given the server's options, answers as the running server does."""

from __future__ import annotations

import numpy as np
import pytest
from openai import BadRequestError, OpenAI

from server.launch.config_file import load_config_file
from tests.support.compare import assert_close_vectors
from tests.support.launch import PRESETS
from tests.support.texts import varied_texts


@pytest.fixture(scope="module")
def preset_engine():
    from embedserve import Engine

    with Engine(**load_config_file(PRESETS / "all-minilm-l6-v2.yaml")) as engine:
        yield engine


def test_engine_vectors_equal_the_servers(preset_server, preset_engine):
    texts = varied_texts(80, long_words=150)
    client = OpenAI(base_url=f"{preset_server.base_url}/v1", api_key="x")
    served = np.array([d.embedding for d in client.embeddings.create(model="m", input=texts).data], dtype=np.float32)
    ours = preset_engine.embed(texts)
    assert ours.shape == served.shape == (80, 384)
    assert_close_vectors(ours, served)
    assert np.abs(ours - served).max() < 1e-5


def test_engine_refuses_dimensions_with_the_servers_message(preset_server, preset_engine):
    client = OpenAI(base_url=f"{preset_server.base_url}/v1", api_key="x")
    with pytest.raises(BadRequestError) as served:
        client.embeddings.create(model="m", input="x", dimensions=64)
    with pytest.raises(ValueError) as ours:
        preset_engine.embed(["x"], dimensions=64)
    assert served.value.body["message"] == str(ours.value)
