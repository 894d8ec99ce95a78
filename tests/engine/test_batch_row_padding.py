"""The runner pads a batch to its row bucket with extra sequences: every layer sees a bucket, the vectors do not move."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.layers import cpu_packed_linear
from engine.layers.cpu_packed_linear import PADDING_SEQUENCE_TOKENS, padded_rows, padding_sequence_lengths
from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.encoder_models import build_bert_reranker

# 7 sequences, 311 tokens: not a bucket (320 is), and more than one padding sequence at a short context
LENGTHS = (3, 17, 64, 100, 1, 90, 36)


def _sequences(vocab_size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(5, vocab_size, size=n).astype(np.int32) for n in LENGTHS]


def _rows_seen(runner: ModelRunner, run) -> list[int]:
    """Runs `run()` and returns the row count of every input to the model's first packed linear."""
    first = next(m for m in runner.model.modules() if getattr(m, "packed_weight", None) is not None)
    seen: list[int] = []
    handle = first.register_forward_pre_hook(lambda _module, args: seen.append(args[0].shape[0]))
    try:
        run()
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize(("tokens", "context"), [(311, 512), (311, 4), (300, 512), (32, 512), (1, 512), (5000, 512)])
def test_padding_sequences_fill_exactly_to_the_bucket(tokens, context):
    lengths = padding_sequence_lengths(tokens, context)
    assert tokens + sum(lengths) == padded_rows(tokens)
    assert all(1 <= n <= min(context, PADDING_SEQUENCE_TOKENS) for n in lengths)


@pytest.fixture(scope="module")
def reranker(tmp_path_factory) -> str:
    return build_bert_reranker(tmp_path_factory.mktemp("models") / "bert-reranker")


@pytest.mark.parametrize("model", ["minilm", "reranker", "decoder"])
def test_padded_batches_give_the_exact_batches_vectors(model, monkeypatch, request, tiny_decoder):
    """Mean pooling (MiniLM), a cross-encoder with token types (pools itself), last-token pooling (a decoder)."""
    path = tiny_decoder("qwen3-causal-lm") if model == "decoder" else request.getfixturevalue(model)
    runner = ModelRunner(ModelConfig.load(path), "cpu")
    sequences = _sequences(min(runner.config.vocab_size, 20_000))
    token_types = [(np.arange(n) >= n // 2).astype(np.int32) for n in LENGTHS] if model == "reranker" else None

    monkeypatch.setattr(cpu_packed_linear, "PAD_ROWS", False)
    exact_rows = _rows_seen(runner, lambda: runner.embed(sequences, token_types=token_types))
    exact = runner.embed(sequences, token_types=token_types)
    monkeypatch.setattr(cpu_packed_linear, "PAD_ROWS", True)
    padded_rows_seen = _rows_seen(runner, lambda: runner.embed(sequences, token_types=token_types))
    padded = runner.embed(sequences, token_types=token_types)

    assert exact_rows == [sum(LENGTHS)] and padded_rows_seen == [padded_rows(sum(LENGTHS))] != exact_rows
    assert padded.shape == exact.shape == (len(LENGTHS), exact.shape[1])
    np.testing.assert_allclose(padded, exact, rtol=1e-5, atol=1e-5)


def test_rows_are_padded_in_both_dtypes_unless_the_environment_chose(monkeypatch):
    for choice, expected in ((None, True), (True, True), (False, False)):
        monkeypatch.setattr(cpu_packed_linear, "PAD_ROWS", choice)
        assert cpu_packed_linear.pads_rows(torch.float32) is expected
        assert cpu_packed_linear.pads_rows(torch.bfloat16) is expected
