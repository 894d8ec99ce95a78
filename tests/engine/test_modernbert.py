"""ModernBERT in the engine against sentence-transformers on a tiny random-weight folder: global and local layers
(texts far longer than the local window), CLS and mean pooling, batch invariance, bfloat16."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import assert_batch_invariant, assert_close_vectors, cosine_per_row
from tests.support.decoder_reference import engine_vectors
from tests.support.modernbert_models import LOCAL_HALF_WINDOW
from tests.support.texts import mixed_length_batch, varied_texts

TEXTS = varied_texts(40, long_words=80)


@pytest.fixture(scope="module")
def cls_folder(tiny_modernbert, tmp_path_factory) -> str:
    """The same weights pooled at [CLS], as gte-modernbert declares it."""
    folder = tmp_path_factory.mktemp("models") / "modernbert-cls"
    shutil.copytree(tiny_modernbert, folder, dirs_exist_ok=True)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "pooling_mode": "cls"}))
    return str(folder)


def _token_ids(model, texts: list[str]) -> list[list[int]]:
    return model.tokenizer(texts, truncation=True, max_length=512)["input_ids"]


def test_fixture_is_sensitive_to_the_text_and_the_window(tiny_modernbert, st_model_factory):
    model = st_model_factory(tiny_modernbert)
    vectors = model.encode(TEXTS[:12])
    similarity = vectors @ vectors.T
    assert similarity[~np.eye(12, dtype=bool)].max() < 0.99, "different texts must get clearly different vectors"
    ids = _token_ids(model, TEXTS)
    assert sum(len(x) > 4 * LOCAL_HALF_WINDOW for x in ids) > 20, "most texts must be longer than the local window"
    # The window moves the vectors of these texts: a model that ignored it would fail the parity test below.
    transformer = model[0].model
    long_ids = torch.tensor([max(ids, key=len)])
    with torch.inference_mode():
        right = transformer(input_ids=long_ids).last_hidden_state.mean(1).numpy()
        transformer.config.sliding_window = 1000  # the session shares this model: put the window back after
        try:
            no_window = transformer(input_ids=long_ids).last_hidden_state.mean(1).numpy()
        finally:
            transformer.config.sliding_window = LOCAL_HALF_WINDOW
    assert cosine_per_row(right, no_window)[0] < 0.999


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_vectors_equal_sentence_transformers(pooling, tiny_modernbert, cls_folder, st_model_factory):
    folder = tiny_modernbert if pooling == "mean" else cls_folder
    config = ModelConfig.load(folder)
    assert (config.pooling, config.normalize, config.text.layer_types[:2]) == (
        pooling,
        True,
        ("full_attention", "sliding_attention"),
    )
    reference = st_model_factory(folder)
    ids = _token_ids(reference, TEXTS)
    assert max(len(x) for x in ids) > 100 and min(len(x) for x in ids) <= LOCAL_HALF_WINDOW
    assert_close_vectors(engine_vectors(ModelRunner(config), ids), reference.encode(TEXTS, batch_size=8))


def test_a_text_alone_embeds_as_inside_a_mixed_batch(cls_folder, st_model_factory):
    runner = ModelRunner(ModelConfig.load(cls_folder))
    texts = mixed_length_batch(16)
    assert_batch_invariant(
        runner, [np.asarray(x, dtype=np.int32) for x in _token_ids(st_model_factory(cls_folder), texts)]
    )


def test_bfloat16_stays_close_to_sentence_transformers_float32(tiny_modernbert, st_model_factory):
    reference = st_model_factory(tiny_modernbert)
    runner = ModelRunner(ModelConfig.load(tiny_modernbert, dtype="bfloat16"))
    assert {p.dtype for p in runner.model.parameters()} == {torch.bfloat16}
    cos = cosine_per_row(runner.embed(_token_ids(reference, TEXTS)), reference.encode(TEXTS, batch_size=8))
    assert cos.min() >= 0.999 and cos.min() < 0.999999, cos.min()  # close, and really run in bfloat16
