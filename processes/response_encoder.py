"""Turns pooled vectors into the final OpenAI JSON body (truncate, then L2-normalize, then encode), and reads the
base64 form back into float32 rows for frontends that need the numbers."""

from __future__ import annotations

import base64

import msgspec
import numpy as np

from processes.messages import RequestOutput

_json = msgspec.json.Encoder()


def finish_vectors(vectors: np.ndarray, dimensions: int | None, normalize: bool) -> np.ndarray:
    """Matryoshka truncation first, then normalization, as the models were trained."""
    if dimensions is not None:
        vectors = vectors[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(vectors, dtype="<f4")


def encode_embeddings_body(output: RequestOutput, served_model_name: str, normalize: bool) -> bytes:
    assert output.embeddings is not None, "only a request that did not fail has vectors"
    vectors = finish_vectors(output.embeddings.to_numpy(), output.dimensions, normalize)
    if output.encoding_format == "base64":
        encoded = [base64.b64encode(row.tobytes()).decode("ascii") for row in vectors]
    else:
        encoded = vectors.tolist()
    return _json.encode(
        {
            "object": "list",
            "data": [{"object": "embedding", "embedding": e, "index": i} for i, e in enumerate(encoded)],
            "model": served_model_name,
            "usage": {"prompt_tokens": output.prompt_tokens, "total_tokens": output.prompt_tokens},
        }
    )


def encode_scores_body(output: RequestOutput) -> bytes:
    """A cross-encoder's logits, untouched (no truncation, no normalization): little-endian float32 bytes, one
    row of labels per pair. The frontend applies the activation the request asks for and shapes the route's JSON."""
    assert output.embeddings is not None, "only a request that did not fail has scores"
    return np.ascontiguousarray(output.embeddings.to_numpy(), dtype="<f4").tobytes()


class _Base64Item(msgspec.Struct):
    embedding: str  # base64 of little-endian float32


class _Base64Body(msgspec.Struct):
    data: list[_Base64Item]


def decode_base64_vectors(body: bytes) -> np.ndarray:
    """The (num_inputs, dimensions) float32 rows of a base64 embeddings body, bit for bit as they were encoded."""
    items = msgspec.json.decode(body, type=_Base64Body).data
    rows = [np.frombuffer(base64.b64decode(item.embedding), dtype="<f4") for item in items]
    return np.stack(rows) if rows else np.empty((0, 0), dtype="<f4")


def encode_error_body(message: str, status: int) -> bytes:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return _json.encode({"error": {"message": message, "type": kind, "param": None, "code": status}})
