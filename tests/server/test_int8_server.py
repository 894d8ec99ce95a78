"""A server started with --quantization int8 says so, answers the OpenAI client close to float32, and refuses
quantizations it does not have before loading anything."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from openai import OpenAI

from tests.support.compare import cosine_per_row
from tests.support.launch import REPO_ROOT, RunningServer
from tests.support.texts import varied_texts


def test_int8_server_answers_close_to_float32(minilm, st_model_factory):
    texts = varied_texts(24, long_words=120)
    with RunningServer(["--model-path", minilm, "--quantization", "int8", "--dtype", "bfloat16"]) as server:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="x")
        response = client.embeddings.create(model="m", input=texts)
        assert "dtype=bfloat16 quantization=int8" in server.log()
    vectors = np.array([item.embedding for item in response.data])
    assert vectors.shape == (24, 384) and response.usage.prompt_tokens > 24
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = cosine_per_row(vectors, st_model_factory(minilm).encode(texts))
    assert cosine.min() >= 0.98 and cosine.mean() >= 0.995, (cosine.min(), cosine.mean())


def test_an_unknown_quantization_is_refused_at_startup(minilm):
    proc = subprocess.run(
        [sys.executable, "-m", "server.launch_server", "--model-path", minilm, "--quantization", "fp8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--quantization 'fp8' is not one of int8" in proc.stderr
