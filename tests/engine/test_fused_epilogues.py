"""The element-wise steps folded into oneDNN's matmuls (residual add, gate activation and product), RMSNorm and the
rotary give what the unfused formulas give, packed or not, padded or not."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.layers import cpu_packed_linear
from engine.layers.activation import activation_by_name
from engine.layers.gate_up_linear import GateUpParallelLinear
from engine.layers.linear import RowParallelLinear
from engine.layers.norm import GemmaRMSNorm, RMSNorm
from engine.layers.rotary import apply_rotary
from tests.engine.test_cpu_packed_linear import DTYPES, _random_linear


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 0.06


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [7, 300])  # 300 is not a bucket: with padding on, the add runs after the matmul
@pytest.mark.parametrize("pad_rows", [False, True])
def test_residual_joins_inside_the_output_projection(dtype, rows, pad_rows, monkeypatch):
    monkeypatch.setattr(cpu_packed_linear, "PAD_ROWS", pad_rows)
    layer = _random_linear(RowParallelLinear, 256, 128, dtype, seed=rows)
    x, residual = torch.randn(rows, 256).to(dtype), torch.randn(rows, 128).to(dtype)
    expected = F.linear(x.double(), layer.weight.double(), layer.bias.double()) + residual.double()
    unpacked = layer(x, residual)
    assert layer.pack_for_cpu()
    packed = layer(x, residual)
    for actual in (unpacked, packed):
        assert actual.dtype == dtype and actual.shape == (rows, 128)
        assert (actual.double() - expected).abs().max().item() < _tolerance(dtype)
    assert residual.shape == (rows, 128)  # the residual itself is not written to


def _gate_up(activation: str, dtype: torch.dtype, bias: bool, seed: int) -> tuple[GateUpParallelLinear, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    layer = GateUpParallelLinear(96, 160, activation, bias=bias)
    weight = torch.randn(320, 96, generator=generator) / 96**0.5
    layer.weight_loader(layer.weight, weight.to(dtype))  # both halves as one tensor, as ModernBERT's Wi
    layer.weight.data = layer.weight.data.to(dtype)
    if layer.bias is not None:
        layer.bias.data = torch.randn(320, generator=generator).to(dtype)
    return layer, weight


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["silu", "gelu_pytorch_tanh", "gelu", "quick_gelu"])
@pytest.mark.parametrize("bias", [False, True])
def test_gated_projection_equals_activation_of_gate_times_up(dtype, activation, bias):
    """Fusable activations pack the halves apart (quick_gelu packs the fused matmul); all equal act(gate) * up."""
    layer, _ = _gate_up(activation, dtype, bias, seed=3)
    x = torch.randn(37, 96).to(dtype)
    weight, layer_bias = layer.weight.data.double(), layer.bias.data.double() if bias else None
    gate, up = F.linear(x.double(), weight, layer_bias).chunk(2, dim=-1)
    expected = activation_by_name(activation)(gate) * up
    unpacked = layer.gated(x)
    assert layer.pack_for_cpu()
    assert (layer.packed_halves is not None) == (activation != "quick_gelu")
    packed = layer.gated(x)
    for actual in (unpacked, packed):
        assert actual.dtype == dtype and actual.shape == (37, 160)
        assert (actual.double() - expected).abs().max().item() < _tolerance(dtype) * max(1.0, expected.abs().max())


def _reference_rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    x64 = x.double()
    return scale.double() * x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [RMSNorm, GemmaRMSNorm])
def test_rms_norm_equals_its_formula_and_leaves_its_input_alone(cls, dtype):
    norm = cls(64, 1e-6)
    norm.weight.data = torch.randn(64)
    norm = norm.to(dtype)
    x = (torch.randn(5, 3, 64) * 4).to(dtype)
    before = x.clone()
    scale = norm.weight.float() + (1.0 if cls is GemmaRMSNorm else 0.0)
    actual = norm(x)
    assert actual.dtype == dtype and torch.equal(x, before)
    expected = _reference_rms_norm(x, scale, 1e-6)
    relative = 1e-6 if dtype == torch.float32 else 1e-2
    assert ((actual.double() - expected).abs() / expected.abs().clamp_min(1.0)).max().item() < relative


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotary_equals_rotate_half_on_views(dtype):
    """q and k arrive as views into the fused q/k/v output; the rotation reads them in place."""
    qkv = torch.randn(11, 6, 16).to(dtype)
    q = qkv[:, :4]
    angles = torch.randn(11, 1, 8) * 3
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    q64, full_cos, full_sin = q.double(), torch.cat((cos, cos), -1).double(), torch.cat((sin, sin), -1).double()
    first, second = q64.chunk(2, dim=-1)
    expected = q64 * full_cos + torch.cat((-second, first), dim=-1) * full_sin
    actual = apply_rotary(q, cos, sin)
    assert actual.dtype == dtype and actual.shape == q.shape
    assert (actual.double() - expected).abs().max().item() < (1e-5 if dtype == torch.float32 else 0.05)
