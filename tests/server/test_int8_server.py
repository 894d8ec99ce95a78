"""A server started with --quantization int8 says so (and which attention kernel runs) and answers the OpenAI client close to float32 (unknown
schemes are refused with the other flag rules, tests/server/test_server_args.py)."""

from __future__ import annotations

import numpy as np
from openai import OpenAI

from engine.attention.cpu_kernel import unavailable_reason
from tests.support.compare import cosine_per_row
from tests.support.launch import RunningServer
from tests.support.texts import varied_texts


def test_int8_server_answers_close_to_float32(minilm, st_model_factory):
    texts = varied_texts(24, long_words=120)
    with RunningServer(["--model-path", minilm, "--quantization", "int8", "--dtype", "bfloat16"]) as server:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="x")
        response = client.embeddings.create(model="m", input=texts)
        assert "dtype=bfloat16 quantization=int8" in server.log()
        # its attention runs in bf16: the AMX varlen kernel where the CPU has AMX (engine/attention/cpu_kernel.py)
        kernel = "+amx-varlen" if unavailable_reason() is None else ""
        assert f"attention=torch_native{kernel} " in server.log()
    vectors = np.array([item.embedding for item in response.data])
    assert vectors.shape == (24, 384) and response.usage.prompt_tokens > 24
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = cosine_per_row(vectors, st_model_factory(minilm).encode(texts))
    assert cosine.min() >= 0.98 and cosine.mean() >= 0.995, (cosine.min(), cosine.mean())
