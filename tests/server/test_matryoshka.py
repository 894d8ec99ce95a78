"""`dimensions`: truncate then normalize on Matryoshka models; every invalid value is a 400.

The 400s come from the frontend alone: they are asked of the real app in-process, through the real OpenAI client.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from openai import BadRequestError, OpenAI
from starlette.testclient import TestClient

from tests.support.inprocess_app import inprocess_app, openai_client_of


@pytest.fixture(scope="module")
def client(cls_matryoshka_server) -> OpenAI:
    return OpenAI(base_url=f"{cls_matryoshka_server.base_url}/v1", api_key="x")


def test_each_listed_size_truncates_then_normalizes(client):
    full = np.array(client.embeddings.create(model="m", input="a sentence about rain").data[0].embedding)
    assert full.shape == (384,)
    for size in (64, 128, 256):
        vec = np.array(
            client.embeddings.create(model="m", input="a sentence about rain", dimensions=size).data[0].embedding
        )
        assert vec.shape == (size,)
        assert abs(np.linalg.norm(vec) - 1) < 1e-5
        expected = full[:size] / np.linalg.norm(full[:size])
        np.testing.assert_allclose(vec, expected, atol=1e-6)


def test_batch_with_dimensions(client):
    response = client.embeddings.create(model="m", input=["one", "two", "three"], dimensions=128)
    assert [len(d.embedding) for d in response.data] == [128, 128, 128]


@pytest.fixture(scope="module")
def inprocess_client(bge_style_cls) -> Iterator[OpenAI]:
    """The same model and Matryoshka sizes in the real app in-process, its engine never started."""
    with inprocess_app(bge_style_cls, {"matryoshka_dimensions": [64, 128, 256]}) as (app, _):
        yield openai_client_of(TestClient(app))


@pytest.mark.parametrize(
    "size, fragment", [(100, "allowed values: [64, 128, 256]"), (0, "at least 1"), (-1, "at least 1"), (385, "exceeds")]
)
def test_invalid_dimensions_are_400(inprocess_client, size, fragment):
    with pytest.raises(BadRequestError) as info:
        inprocess_client.embeddings.create(model="m", input="x", dimensions=size)
    assert info.value.status_code == 400
    assert fragment in info.value.body["message"]
    assert info.value.body["param"] == "dimensions"


def test_dimensions_on_a_non_matryoshka_model_is_400(minilm):
    body = {"input": "x", "dimensions": 128}
    with inprocess_app(minilm) as (app, _):
        response = TestClient(app).post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert "does not support Matryoshka" in response.json()["error"]["message"]
