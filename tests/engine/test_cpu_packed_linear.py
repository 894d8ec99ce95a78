"""oneDNN-packed CPU linears give F.linear's results, fuse activations exactly, and free the plain weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.layers import cpu_packed_linear
from engine.layers.activation import activation_by_name
from engine.layers.cpu_packed_linear import (
    EXACT_ROWS,
    pack_model_linears,
    packing_supported,
    padded_rows,
    row_bucket_batches,
)
from engine.layers.linear import ColumnParallelLinear, RowParallelLinear
from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import cosine_per_row

DTYPES = [
    torch.float32,
    pytest.param(
        torch.bfloat16,
        marks=pytest.mark.skipif(
            not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bfloat16"
        ),
    ),
]


def _random_linear(cls, in_features: int, out_features: int, dtype: torch.dtype, seed: int):
    generator = torch.Generator().manual_seed(seed)
    layer = cls(in_features, out_features)
    layer.weight.data = (torch.randn(out_features, in_features, generator=generator) / in_features**0.5).to(dtype)
    layer.bias.data = torch.randn(out_features, generator=generator).to(dtype)
    return layer


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [ColumnParallelLinear, RowParallelLinear])
@pytest.mark.parametrize("rows", [1, 9, 300, 1000])  # 300 and 1000 are padded to their buckets when padding
@pytest.mark.parametrize("pad_rows", [False, True])
def test_packed_linear_equals_plain(cls, dtype, rows, pad_rows, monkeypatch):
    monkeypatch.setattr(cpu_packed_linear, "PAD_ROWS", pad_rows)
    layer = _random_linear(cls, 384, 1536, dtype, seed=rows)
    x = torch.randn(rows, 384).to(dtype)
    expected = F.linear(x.double(), layer.weight.double(), layer.bias.double())
    assert layer.pack_for_cpu() and layer.weight.numel() == 0  # the plain copy is released
    actual = layer(x)
    assert actual.dtype == dtype and actual.shape == (rows, 1536)
    tolerance = 1e-4 if dtype == torch.float32 else 0.05
    assert (actual.double() - expected).abs().max().item() < tolerance


def test_row_buckets_bound_the_shapes_and_the_padding():
    """Every token count maps to a bucket at most 1/16 larger, and a doubling of the batch holds 16 buckets."""
    buckets = [padded_rows(rows) for rows in range(1, 16_385)]
    assert buckets[:EXACT_ROWS] == list(range(1, EXACT_ROWS + 1))
    assert all(rows <= bucket <= rows * 17 / 16 for rows, bucket in enumerate(buckets, start=1))
    assert all(padded_rows(bucket) == bucket for bucket in buckets)
    for low in (32, 256, 8192):
        assert len({padded_rows(rows) for rows in range(low + 1, 2 * low + 1)}) == 16


@pytest.mark.parametrize("activation", ["gelu", "gelu_pytorch_tanh", "gelu_new", "relu", "silu"])
def test_fused_activation_equals_activation_after_matmul(activation):
    """Fusable names run inside oneDNN's matmul; others (silu) run after it; both agree with the plain path."""
    plain = _random_linear(ColumnParallelLinear, 64, 256, torch.float32, seed=1)
    packed = _random_linear(ColumnParallelLinear, 64, 256, torch.float32, seed=1)
    assert packed.pack_for_cpu()
    x = torch.randn(17, 64)
    expected = activation_by_name(activation)(F.linear(x, plain.weight, plain.bias))
    torch.testing.assert_close(plain(x, activation=activation), expected)
    torch.testing.assert_close(packed(x, activation=activation), expected, atol=1e-5, rtol=1e-5)


def test_packing_is_cpu_only_and_once():
    layer = _random_linear(ColumnParallelLinear, 32, 32, torch.float32, seed=0)
    assert packing_supported(layer.weight)
    assert not packing_supported(torch.empty(4, 4, dtype=torch.float16))  # no native fp16 path: stays plain
    assert pack_model_linears(torch.nn.Sequential(layer)) == 1
    assert pack_model_linears(torch.nn.Sequential(layer)) == 0


def test_packed_model_equals_unpacked_model(minilm):
    """The whole MiniLM with packed weights gives the unpacked vectors (parity with the library is tested too)."""
    config = ModelConfig.load(minilm)
    packed, plain = ModelRunner(config), ModelRunner(config, pack_cpu_weights=False)
    assert packed.model.layers[0].mlp.fc1.packed_weight is not None
    assert plain.model.layers[0].mlp.fc1.packed_weight is None
    rng = np.random.default_rng(0)
    ids = [rng.integers(1000, 20000, size=n).astype(np.int32) for n in (3, 17, 64, 200)]
    assert cosine_per_row(packed.embed(ids), plain.embed(ids)).min() >= 0.999999


def test_warm_up_batches_cover_every_row_bucket_and_sequence_length():
    batches = row_bucket_batches(2048, context_length=128)
    assert [sum(lengths) for lengths in batches] == sorted({padded_rows(rows) for rows in range(1, 2049)})
    assert all(1 <= length <= 128 for lengths in batches for length in lengths)
    assert {length for lengths in batches for length in lengths} == set(range(1, 129))


@pytest.mark.parametrize("pad_rows", [False, True])
def test_warm_up_builds_the_row_buckets_only_with_padded_rows(pad_rows, monkeypatch, minilm):
    monkeypatch.setattr(cpu_packed_linear, "PAD_ROWS", pad_rows)
    runner = ModelRunner(ModelConfig.load(minilm), "cpu")
    batches: list[list[int]] = []
    embed = runner.embed
    monkeypatch.setattr(
        runner, "embed", lambda sequences: batches.append([len(s) for s in sequences]) or embed(sequences)
    )
    runner.warmup(max_batch_tokens=100)
    expected_buckets = sorted({padded_rows(rows) for rows in range(1, 101)}) if pad_rows else []
    assert [sum(lengths) for lengths in batches[1:]] == expected_buckets
