"""The result step: truncate then normalize, and the exact bytes of float, base64 and error bodies."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from processes.messages import RawArray, RequestOutput
from processes.response_encoder import encode_embeddings_body, encode_error_body, encode_scores_body, finish_vectors


def _output(vectors: list[list[float]], **fields) -> RequestOutput:
    return RequestOutput("r", RawArray.from_numpy(np.asarray(vectors, dtype=np.float32)), **fields)


def test_truncation_comes_before_normalization():
    vectors = np.array([[3.0, 4.0, 12.0], [0.0, 2.0, 100.0]], dtype=np.float32)
    finished = finish_vectors(vectors, dimensions=2, normalize=True)
    np.testing.assert_allclose(finished, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)  # normalized after: unit length
    assert finished.dtype == np.dtype("<f4") and finished.flags.c_contiguous


def test_scores_are_the_raw_logits_never_normalized_or_truncated():
    logits = [[-3.5], [0.25], [12.0]]
    body = encode_scores_body(_output(logits, task="score", dimensions=None))
    np.testing.assert_array_equal(np.frombuffer(body, dtype="<f4"), [-3.5, 0.25, 12.0])


def test_without_normalization_vectors_are_only_truncated():
    vectors = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)
    np.testing.assert_array_equal(finish_vectors(vectors, None, normalize=False), vectors)
    np.testing.assert_array_equal(finish_vectors(vectors, 1, normalize=False), [[3.0]])


def test_a_zero_vector_stays_zero_instead_of_nan():
    finished = finish_vectors(np.zeros((1, 4), np.float32), None, normalize=True)
    np.testing.assert_array_equal(finished, np.zeros((1, 4)))


def test_float_body_is_byte_exact():
    body = encode_embeddings_body(_output([[1, 1, 1, 1], [2, 0, 0, 0]], prompt_tokens=7), "mini", normalize=True)
    assert body == (
        b'{"object":"list","data":['
        b'{"object":"embedding","embedding":[0.5,0.5,0.5,0.5],"index":0},'
        b'{"object":"embedding","embedding":[1.0,0.0,0.0,0.0],"index":1}],'
        b'"model":"mini","usage":{"prompt_tokens":7,"total_tokens":7}}'
    )


def test_float_body_carries_float32_values_exactly():
    body = encode_embeddings_body(_output([[3, 4]]), "m", normalize=True)
    [vector] = [d["embedding"] for d in json.loads(body)["data"]]
    assert vector == [float(np.float32(0.6)), float(np.float32(0.8))]  # the float32 values, not rounded decimals


def test_base64_body_is_byte_exact_little_endian_float32():
    output = _output([[1, 1, 1, 1, 9], [2, 0, 0, 0, 9]], encoding_format="base64", dimensions=4, prompt_tokens=3)
    body = encode_embeddings_body(output, "m", normalize=True)
    assert body == (
        b'{"object":"list","data":['
        b'{"object":"embedding","embedding":"AAAAPwAAAD8AAAA/AAAAPw==","index":0},'
        b'{"object":"embedding","embedding":"AACAPwAAAAAAAAAAAAAAAA==","index":1}],'
        b'"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}'
    )
    decoded = np.frombuffer(base64.b64decode(json.loads(body)["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, [0.5, 0.5, 0.5, 0.5])


def test_base64_without_normalization_keeps_raw_values():
    body = encode_embeddings_body(_output([[-0.25, 2.5]], encoding_format="base64"), "m", normalize=False)
    assert json.loads(body)["data"][0]["embedding"] == "AACAvgAAIEA="


@pytest.mark.parametrize(
    "status, kind",
    [(400, "invalid_request_error"), (413, "invalid_request_error"), (500, "server_error"), (503, "server_error")],
)
def test_error_body_is_openais_envelope(status, kind):
    body = encode_error_body('bad "input"', status)
    assert body == (
        b'{"error":{"message":"bad \\"input\\"","type":"' + kind.encode() + b'","param":null,"code":'
        + str(status).encode() + b"}}"
    )  # fmt: skip
