"""A text's vector does not depend on what shares its batch, nor on its place in it."""

from __future__ import annotations

import numpy as np
from transformers import AutoTokenizer

from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import cosine_per_row
from tests.support.texts import mixed_length_batch


def test_alone_equals_inside_a_mixed_batch(minilm):
    runner = ModelRunner(ModelConfig.load(minilm))
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    texts = mixed_length_batch(32)
    ids = [np.asarray(x, dtype=np.int32) for x in tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    assert len({len(x) for x in ids}) > 5, "the batch must mix lengths"
    batched = runner.embed(ids)
    alone = np.concatenate([runner.embed([x]) for x in ids])
    reversed_batch = runner.embed(ids[::-1])[::-1]
    assert cosine_per_row(alone, batched).min() >= 0.99999
    assert cosine_per_row(reversed_batch, batched).min() >= 0.99999
    assert np.abs(alone - batched).max() < 1e-4
