"""Our decoder families against transformers: tiny random-weight models of each family and real SmolLM2 weights."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import assert_batch_invariant, assert_close_vectors
from tests.support.decoder_models import TINY_VARIANTS
from tests.support.decoder_reference import engine_vectors, transformers_last_token_vectors
from tests.support.texts import mixed_length_batch, varied_texts


def _token_ids(path: str, texts: list[str]) -> list[list[int]]:
    return AutoTokenizer.from_pretrained(path)(texts)["input_ids"]


@pytest.mark.parametrize("variant", sorted(TINY_VARIANTS))
def test_tiny_model_matches_transformers_on_a_mixed_length_batch(variant, tiny_decoder):
    path = tiny_decoder(variant)
    config = ModelConfig.load(path)
    assert (config.pooling, config.normalize, config.dtype) == ("last", True, "float32")
    ids = _token_ids(path, varied_texts(24, long_words=150))
    assert len({len(x) for x in ids}) > 10, "the batch must mix lengths"
    assert_close_vectors(engine_vectors(ModelRunner(config), ids), transformers_last_token_vectors(path, ids))


def test_smollm2_real_weights_match_transformers(smollm2):
    config = ModelConfig.load(smollm2)
    assert config.architecture == "LlamaForCausalLM" and config.embedding_dim == 576
    # Real weights on CPU are the slow part of the suite: a few texts, from 1 to about 150 tokens.
    paragraph = varied_texts(21, long_words=120)[-1]
    ids = _token_ids(smollm2, varied_texts(8) + mixed_length_batch(6, seed=3) + [paragraph])
    assert max(len(x) for x in ids) > 100 and min(len(x) for x in ids) == 1
    assert_close_vectors(engine_vectors(ModelRunner(config), ids), transformers_last_token_vectors(smollm2, ids))


@pytest.mark.parametrize("model", ["tiny_qwen3", "smollm2"])
def test_causal_model_is_batch_invariant(model, request, tiny_decoder):
    path = tiny_decoder("qwen3-causal-lm") if model == "tiny_qwen3" else request.getfixturevalue("smollm2")
    runner = ModelRunner(ModelConfig.load(path))
    assert_batch_invariant(
        runner, [np.asarray(x, dtype=np.int32) for x in _token_ids(path, mixed_length_batch(10, seed=3))]
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_serving_stays_close_to_float32(dtype, tiny_decoder):
    path = tiny_decoder("qwen3-causal-lm")
    ids = _token_ids(path, varied_texts(12, long_words=80))
    assert max(len(x) for x in ids) > 80  # a paragraph among the short texts
    half = ModelRunner(ModelConfig.load(path, dtype=dtype))
    assert next(half.model.parameters()).dtype.__str__() == f"torch.{dtype}"
    assert_close_vectors(engine_vectors(half, ids), transformers_last_token_vectors(path, ids), min_cosine=0.99)
