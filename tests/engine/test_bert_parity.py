"""Our BERT implementation against sentence-transformers on the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import assert_close_vectors
from tests.support.texts import varied_texts


def _embed(path: str, texts: list[str], context_length: int) -> np.ndarray:
    config = ModelConfig.load(path, context_length=context_length)
    runner = ModelRunner(config)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer(texts, truncation=True, max_length=context_length)["input_ids"]
    vectors = runner.embed([np.asarray(x, dtype=np.int32) for x in ids])
    if config.normalize:
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@pytest.mark.parametrize("fixture", ["minilm", "bge_style_cls"])
def test_matches_sentence_transformers_up_to_512_tokens(fixture, request, st_model_factory):
    path = request.getfixturevalue(fixture)
    texts = varied_texts(60)
    reference_model = st_model_factory(path)
    tokenizer = reference_model.tokenizer
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert max(lengths) > 450, "the set must include paragraphs near 512 tokens"
    served_length = reference_model.max_seq_length
    reference_model.max_seq_length = 512  # reach every position the weights have
    try:
        reference = reference_model.encode(texts, batch_size=16, convert_to_numpy=True)
    finally:
        reference_model.max_seq_length = served_length  # the session shares this model with other tests
    assert_close_vectors(_embed(path, texts, 512), reference)


def test_default_context_is_sentence_transformers_max_seq_length(minilm):
    assert ModelConfig.load(minilm).context_length == 256
