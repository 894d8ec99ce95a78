"""ModernBERT through a real server launched with its preset: vectors equal SentenceTransformer past the local
window (base64 through the OpenAI client), and a text alone equals the same text inside a mixed concurrent batch."""

from __future__ import annotations

import numpy as np
import pytest
from openai import OpenAI

from tests.support.compare import assert_alone_equals_concurrent_batches, assert_close_vectors
from tests.support.launch import PRESETS, RunningServer
from tests.support.modernbert_models import LOCAL_HALF_WINDOW
from tests.support.texts import mixed_length_batch, varied_texts


@pytest.fixture(scope="module")
def client(tiny_modernbert):
    preset = PRESETS / "modernbert-embed-base.yaml"
    with RunningServer(["--config", str(preset), "--model-path", tiny_modernbert]) as running:
        yield OpenAI(base_url=f"{running.base_url}/v1", api_key="x")


def embed(client, texts: list[str]) -> np.ndarray:
    return np.array([d.embedding for d in client.embeddings.create(model="m", input=texts).data])


def test_vectors_equal_sentence_transformers_past_the_local_window(client, tiny_modernbert, st_model_factory):
    reference = st_model_factory(tiny_modernbert)
    texts = [f"search_query: {t}" for t in varied_texts(30, long_words=80)]
    lengths = [len(ids) for ids in reference.tokenizer(texts)["input_ids"]]
    assert max(lengths) > 20 * LOCAL_HALF_WINDOW
    expected = reference.encode(texts)
    assert (expected @ expected.T)[~np.eye(30, dtype=bool)].max() < 0.99, "different texts, different vectors"
    assert_close_vectors(embed(client, texts), expected)


def test_a_text_alone_embeds_as_inside_a_mixed_concurrent_batch(client):
    assert_alone_equals_concurrent_batches(lambda texts: embed(client, texts), mixed_length_batch(24, seed=8))
