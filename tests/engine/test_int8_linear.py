"""--quantization int8: each matmul is the product of per-token int8 activations and per-channel int8 weights,
independent of its batch, and MiniLM stays close to sentence-transformers in float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from engine.layers.int8_linear import INT8_MAX, Int8Weight, int8_linear, quantize_per_token
from engine.model_config import ModelConfig, ModelConfigError, check_quantization
from engine.model_runner import ModelRunner
from tests.support.compare import cosine_per_row
from tests.support.texts import varied_texts


def _quantized_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The definition, in float64: symmetric int8 rows of x and of W, each with its own scale."""
    x64, w64 = x.double(), weight.double()
    x_scale = x64.abs().amax(1, keepdim=True) / INT8_MAX
    w_scale = w64.abs().amax(1, keepdim=True) / INT8_MAX
    return (torch.round(x64 / x_scale) @ torch.round(w64 / w_scale).T) * x_scale * w_scale.T + bias.double()


def _operands(rows: int, dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, 384, generator=generator) * torch.linspace(0.1, 8, 384)).to(dtype)  # outlier columns
    weight = torch.randn(512, 384, generator=generator) / 20
    return x, weight, torch.randn(512, generator=generator)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_linear_is_the_product_of_the_quantized_operands(dtype):
    x, weight, bias = _operands(67, dtype)
    before = x.clone()
    actual = int8_linear(x, Int8Weight.quantize(weight), bias.to(dtype))
    assert actual.dtype == dtype and actual.shape == (67, 512)
    assert torch.equal(x, before)  # the caller's activations are not overwritten
    expected = _quantized_product(x, weight, bias.to(dtype))
    exact = F.linear(x.double(), weight.double(), bias.to(dtype).double())
    scale = expected.abs().max().item()
    error = (actual.double() - expected).abs().max().item() / scale
    # float32 keeps the int32 sums' scaling exact to a few ulps; bfloat16 rounds the result once
    assert error < (1e-5 if dtype == torch.float32 else 8e-3)
    # and the quantization is real: the float product is measurably elsewhere
    assert (exact - expected).abs().max().item() / scale > 10 * min(error, 1e-5)


def test_each_row_is_quantized_alone_and_batches_do_not_change_bits():
    x, weight, bias = _operands(300, torch.float32, seed=1)
    x[5] = 0.0  # a zero row gives the bias, not NaN
    packed = Int8Weight.quantize(weight)
    batched = int8_linear(x, packed, bias, activation="gelu")
    alone = torch.cat([int8_linear(x[i : i + 1], packed, bias, activation="gelu") for i in range(0, 300, 37)])
    assert torch.equal(alone, batched[::37])
    torch.testing.assert_close(batched[5], F.gelu(bias))
    quantized, scales = quantize_per_token(x[:3])
    assert quantized.dtype == torch.int8 and quantized.abs().amax(1).tolist() == [INT8_MAX] * 3
    assert torch.allclose(scales[:, 0], x[:3].abs().amax(1) / INT8_MAX)


def test_quantization_is_int8_on_the_cpu_only():
    check_quantization(None, "cuda")
    check_quantization("int8", "cpu")
    with pytest.raises(ModelConfigError, match="runs on the CPU only, not on cuda"):
        check_quantization("int8", "cuda")
    with pytest.raises(ModelConfigError, match="--quantization 'fp8' is not one of int8"):
        check_quantization("fp8", "cpu")


def test_int8_minilm_stays_close_to_sentence_transformers(minilm, st_model_factory):
    """float32 around the int8 matmuls; bfloat16 around them is checked through a server (test_int8_server.py)."""
    texts = varied_texts(48, long_words=150)
    expected = st_model_factory(minilm).encode(texts, convert_to_numpy=True)
    runner = ModelRunner(ModelConfig.load(minilm, quantization="int8"))
    assert runner.model.layers[0].mlp.fc1.int8_weight is not None and runner.model.layers[0].mlp.fc1.weight.numel() == 0
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    ids = [np.asarray(row, dtype=np.int32) for row in tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    vectors = runner.embed(ids)
    cosine = cosine_per_row(vectors, expected)
    # measured in float32: mean 0.9967, lowest 0.985 on one-word texts ("I", "hello"; docs/benchmarks.md, "int8")
    assert cosine.min() >= 0.98 and cosine.mean() >= 0.995, (cosine.min(), cosine.mean())
    alone = np.concatenate([runner.embed([ids[i]]) for i in (0, 7, 20)])
    assert np.array_equal(alone, vectors[[0, 7, 20]])  # bit for bit: the batch does not change an input's vector
