"""The warm-up runs one layer of each kind, and every layer is back for the forwards that follow."""

from __future__ import annotations

import numpy as np
import pytest

from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from engine.warmup_layers import one_layer_of_each_kind


def _stack(runner: ModelRunner):
    """The module holding the model's `layers` list (the model itself, or its decoder stack)."""
    return next(m for m in runner.model.modules() if hasattr(m, "layers"))


@pytest.mark.parametrize(
    ("model", "kinds"),
    [
        ("minilm", 1),  # six identical BERT layers
        ("tiny_modernbert", 2),  # global and local (windowed) layers alternate
        ("tiny_embeddinggemma", 2),  # sliding, full, sliding, sliding
    ],
)
def test_one_layer_of_each_kind_then_all_of_them(model, kinds, request):
    runner = ModelRunner(ModelConfig.load(request.getfixturevalue(model)), "cpu")
    stack = _stack(runner)
    layers = list(stack.layers)
    ids = [np.arange(5, 45, dtype=np.int32)]
    before = runner.embed(ids)
    with one_layer_of_each_kind(runner.model):
        kept = list(stack.layers)
        assert len(kept) == kinds and kept == [layer for layer in layers if layer in kept]  # firsts, in order
        cut = runner.embed(ids)
    assert list(stack.layers) == layers
    np.testing.assert_array_equal(runner.embed(ids), before)
    assert not np.allclose(cut, before)  # the cut model really ran fewer layers


def test_the_warm_up_leaves_the_model_whole(minilm):
    runner = ModelRunner(ModelConfig.load(minilm), "cpu")
    ids = [np.arange(5, 45, dtype=np.int32)]
    before = runner.embed(ids)
    runner.warmup(max_batch_tokens=300)
    assert len(runner.model.layers) == 6
    np.testing.assert_allclose(runner.embed(ids), before, rtol=1e-6, atol=1e-6)
