"""bfloat16 on the CPU (AVX-512 BF16 here) stays within cosine 0.999 of the float32 reference."""

from __future__ import annotations

import numpy as np
import torch

from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import cosine_per_row
from tests.support.texts import varied_texts


def test_bfloat16_vectors_match_sentence_transformers_float32(minilm, st_model_factory):
    texts = varied_texts(60, long_words=150)
    reference = st_model_factory(minilm).encode(texts, convert_to_numpy=True)
    tokenizer = st_model_factory(minilm).tokenizer
    ids = [np.asarray(x, dtype=np.int32) for x in tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    runner = ModelRunner(ModelConfig.load(minilm, dtype="bfloat16"))
    packed = [m.packed_weight for m in runner.model.modules() if getattr(m, "packed_weight", None) is not None]
    dtypes = {w.dtype for w in [*runner.model.parameters(), *packed]}
    assert dtypes == {torch.bfloat16}, dtypes  # every weight, oneDNN-packed ones included
    cos = cosine_per_row(runner.embed(ids), reference)
    assert (cos >= 0.999).all(), cos.min()  # each vector, against sentence-transformers in float32
    assert cos.min() < 0.999999  # it really ran in bfloat16, not float32
