"""CLS/LAST pooling reads one row per sequence: the last layer computed on those rows alone gives the same vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.attention.length_groups import attend_from_rows, attend_in_groups, group_by_length
from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from engine.pooling import pooled_row_indices
from tests.support.compare import assert_batch_invariant, cosine_per_row

# 16 is the length groups' multiple: these lengths give full groups, padded groups and a one-token sequence
SEQ_LENS = [1, 5, 16, 17, 31, 33, 48, 70, 9, 16]


@pytest.mark.parametrize(("causal", "pooling"), [(True, "last"), (False, "last"), (False, "cls")])
@pytest.mark.parametrize("num_kv_heads", [4, 2])  # plain and grouped-query attention
def test_one_query_per_sequence_equals_full_attention_at_the_pooled_rows(causal, pooling, num_kv_heads):
    torch.manual_seed(0)
    tokens, heads, head_dim = sum(SEQ_LENS), 4, 32
    q = torch.randn(tokens, heads, head_dim)
    k, v = torch.randn(tokens, num_kv_heads, head_dim), torch.randn(tokens, num_kv_heads, head_dim)
    grouped = group_by_length(SEQ_LENS, q.device)
    cu_seqlens = torch.tensor(np.concatenate(([0], np.cumsum(SEQ_LENS))), dtype=torch.int32)
    rows = pooled_row_indices(cu_seqlens, pooling)
    full = attend_in_groups(q, k, v, grouped, causal, head_dim**-0.5, None)
    from_rows = attend_from_rows(q[rows], k, v, grouped, head_dim**-0.5)
    torch.testing.assert_close(from_rows, full[rows], atol=1e-5, rtol=1e-5)


def test_a_decoder_finishes_on_the_last_tokens_with_the_same_vectors(tiny_decoder):
    runner = ModelRunner(ModelConfig.load(tiny_decoder("qwen3-causal-lm")))
    assert runner.pooled_row_method == "last"
    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 1000, size=n, dtype=np.int32) for n in SEQ_LENS]
    normed_rows: list[int] = []
    hook = runner.model.model.norm.register_forward_hook(lambda m, i, o: normed_rows.append(i[0].shape[0]))
    pooled_only = runner.embed(ids)
    runner.pooled_row_method = None
    every_row = runner.embed(ids)
    hook.remove()
    # the final norm saw one row per sequence, then every token (a padding sequence or two may join the batch:
    # engine/layers/cpu_packed_linear.py, padding_sequence_lengths)
    (pooled_pass, full_pass) = normed_rows
    assert len(SEQ_LENS) <= pooled_pass <= len(SEQ_LENS) + 2 and full_pass >= sum(SEQ_LENS)
    assert cosine_per_row(pooled_only, every_row).min() >= 0.999999
    assert np.abs(pooled_only - every_row).max() < 1e-5


def test_finishing_on_pooled_rows_stays_batch_invariant(tiny_decoder):
    runner = ModelRunner(ModelConfig.load(tiny_decoder("qwen3-causal-lm")))
    assert runner.pooled_row_method == "last"
    rng = np.random.default_rng(1)
    assert_batch_invariant(runner, [rng.integers(1, 1000, size=n, dtype=np.int32) for n in (3, 40, 17, 1, 90, 64, 8)])


def test_only_poolings_that_read_one_row_finish_early(tiny_decoder, minilm):
    causal_stack = ModelRunner(ModelConfig.load(tiny_decoder("qwen3-causal-lm"))).model.model
    assert causal_stack.finishes_on_pooled_rows("last")
    assert not causal_stack.finishes_on_pooled_rows("cls")  # a causal first token sees itself only
    assert not causal_stack.finishes_on_pooled_rows("mean")
    assert ModelRunner(ModelConfig.load(minilm)).pooled_row_method is None  # mean pooling reads every row


def test_a_bert_encoder_finishes_on_the_cls_tokens_with_the_same_vectors(bge_style_cls):
    runner = ModelRunner(ModelConfig.load(bge_style_cls))
    assert runner.pooled_row_method == "cls"
    rng = np.random.default_rng(2)
    ids = [np.concatenate(([101], rng.integers(1000, 20000, size=n), [102])).astype(np.int32) for n in SEQ_LENS]
    pooled_only = runner.embed(ids)
    runner.pooled_row_method = None
    every_row = runner.embed(ids)
    assert cosine_per_row(pooled_only, every_row).min() >= 0.999999
    assert np.abs(pooled_only - every_row).max() < 1e-5
