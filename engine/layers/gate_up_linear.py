"""The gated MLP's first projection: act(x W_gate^T) * (x W_up^T), each half its own fused oneDNN matmul on the CPU."""

from __future__ import annotations

import torch

from engine.layers.activation import activation_by_name
from engine.layers.cpu_packed_linear import (
    FUSABLE_ACTIVATIONS,
    pack_weight,
    packed_linear,
    packed_linear_then,
    packing_supported,
)
from engine.layers.linear import MergedColumnParallelLinear


class GateUpParallelLinear(MergedColumnParallelLinear):
    """gate and up fused in one parameter (loaded as shards 0 and 1); `gated(x)` returns act(gate) * up.

    Packed for the CPU, the halves are packed apart: the gate's matmul applies the activation and the up's matmul
    multiplies by the gate in its own pass, so the (tokens, 2 * inner) product, its split and the two element-wise
    passes over it never happen. Where oneDNN cannot apply the activation, the fused matmul is packed as usual.
    """

    packed_halves: tuple[torch.Tensor, torch.Tensor] | None = None

    def __init__(self, in_features: int, inner_size: int, activation: str, bias: bool = True):
        super().__init__(in_features, [inner_size, inner_size], bias)
        self.activation = activation
        self.act = activation_by_name(activation)

    def pack_for_cpu(self) -> bool:
        if self.activation not in FUSABLE_ACTIVATIONS:
            return super().pack_for_cpu()
        if self.packed_halves is not None or not packing_supported(self.weight):
            return False
        gate, up = self.weight.data.chunk(2, dim=0)
        self.packed_halves = (pack_weight(gate), pack_weight(up))
        self.weight.data = torch.empty(0, dtype=self.weight.dtype)  # as _PackableLinear: no second copy
        return True

    def gated(self, x: torch.Tensor) -> torch.Tensor:
        gate_bias, up_bias = self.bias.chunk(2) if self.bias is not None else (None, None)
        if self.packed_halves is not None:
            packed_gate, packed_up = self.packed_halves
            gate = packed_linear(x, packed_gate, gate_bias, self.activation)
            return packed_linear_then(x, packed_up, up_bias, "mul", gate)
        gate, up = self.matmul(x, self.bias).chunk(2, dim=-1)
        return self.act(gate) * up
