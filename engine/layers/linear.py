"""Linear layers that shard across tensor-parallel ranks; each parameter knows how to load its own slice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.layers.activation import activation_by_name
from engine.layers.cpu_packed_linear import (
    FUSABLE_ACTIVATIONS,
    pack_weight,
    packed_linear,
    packed_linear_then,
    packing_supported,
)
from engine.layers.int8_linear import Int8Weight, int8_linear
from engine.layers.parallel_state import all_reduce_sum, tp_rank_and_size
from engine.weights import (
    LoadedTensor,
    ShardId,
    copy_weight,
    default_weight_loader,
    refuse_shard,
    set_weight_loader,
)


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape), requires_grad=False)


class _PackableLinear(nn.Module):
    """Holds `weight` and `bias`; after loading, `pack_for_cpu` swaps the weight for oneDNN's packed copy."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    packed_weight: torch.Tensor | None = None
    int8_weight: Int8Weight | None = None

    def pack_for_cpu(self) -> bool:
        if self.packed_weight is not None or not packing_supported(self.weight):
            return False
        self.packed_weight = pack_weight(self.weight.data)
        # The plain copy is never read again; dropping it keeps a large model from living twice in memory.
        self.weight.data = torch.empty(0, dtype=self.weight.dtype)
        return True

    def quantize_for_cpu(self) -> bool:
        """--quantization int8: swaps the weight for its int8 copy (engine.layers.int8_linear)."""
        if self.int8_weight is not None or self.weight.device.type != "cpu":
            return False
        self.int8_weight = Int8Weight.quantize(self.weight.data)
        self.weight.data = torch.empty(0, dtype=self.weight.dtype)
        return True

    def matmul(self, x: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None) -> torch.Tensor:
        """x W^T + bias, then `activation` (an HF activation name), fused into the matmul when packed."""
        if self.int8_weight is not None:
            return int8_linear(x, self.int8_weight, bias, activation)
        if self.packed_weight is None:
            y = F.linear(x, self.weight, bias)
        elif activation is None or activation in FUSABLE_ACTIVATIONS:
            return packed_linear(x, self.packed_weight, bias, activation)
        else:
            y = packed_linear(x, self.packed_weight, bias)
        return activation_by_name(activation)(y) if activation else y

    def matmul_then(self, x: torch.Tensor, bias: torch.Tensor | None, op: str, other: torch.Tensor) -> torch.Tensor:
        """(x W^T + bias) then `op` ("add" or "mul") with `other`, in the matmul's own pass when packed."""
        if self.packed_weight is not None:
            return packed_linear_then(x, self.packed_weight, bias, op, other)
        y = self.matmul(x, bias)
        return y.add_(other) if op == "add" else y.mul_(other)


class ColumnParallelLinear(_PackableLinear):
    """y = x W^T + b with W's output rows split across ranks; no communication."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.tp_rank, self.tp_size = tp_rank_and_size()
        if out_features % self.tp_size:
            raise ValueError(f"output size {out_features} does not divide by tp size {self.tp_size}")
        self.weight = _param(out_features // self.tp_size, in_features)
        set_weight_loader(self.weight, self.weight_loader)
        self.bias = _param(out_features // self.tp_size) if bias else None
        if self.bias is not None:
            set_weight_loader(self.bias, self.weight_loader)

    def weight_loader(self, param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None) -> None:
        refuse_shard(shard_id)
        size = param.shape[0]
        copy_weight(param, loaded.narrow(0, self.tp_rank * size, size))

    def forward(self, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
        return self.matmul(x, self.bias, activation)


class MergedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel projections of one input fused into one matmul (e.g. gate and up)."""

    def __init__(self, in_features: int, output_sizes: list[int], bias: bool = True):
        self.output_sizes = output_sizes
        super().__init__(in_features, sum(output_sizes), bias)

    def weight_loader(self, param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None) -> None:
        if shard_id is None:  # the checkpoint stores the outputs already fused (ModernBERT's Wi)
            start = 0
            for index, size in enumerate(self.output_sizes):
                self.weight_loader(param, loaded.narrow(0, start, size), index)
                start += size
            return
        if not isinstance(shard_id, int):
            raise ValueError(f"a merged projection loads one output at a time by index, not {shard_id!r}")
        offset = sum(self.output_sizes[:shard_id]) // self.tp_size
        size = self.output_sizes[shard_id] // self.tp_size
        copy_weight(param.narrow(0, offset, size), loaded.narrow(0, self.tp_rank * size, size))


class QKVParallelLinear(ColumnParallelLinear):
    """q, k and v projections fused; heads split across ranks, KV heads replicated when fewer than ranks."""

    def __init__(self, hidden_size: int, head_dim: int, num_heads: int, num_kv_heads: int, bias: bool = True):
        tp_rank, tp_size = tp_rank_and_size()
        if num_heads % tp_size:
            raise ValueError(f"{num_heads} attention heads do not divide by tp size {tp_size}")
        if num_kv_heads % tp_size and tp_size % num_kv_heads:
            raise ValueError(f"{num_kv_heads} KV heads cannot be split or replicated over tp size {tp_size}")
        self.head_dim = head_dim
        self.checkpoint_sizes = (num_heads * head_dim, num_kv_heads * head_dim, num_kv_heads * head_dim)  # q, k, v
        self.num_heads = num_heads // tp_size  # per rank
        self.num_kv_heads = max(1, num_kv_heads // tp_size)  # per rank
        self.kv_replicas = max(1, tp_size // num_kv_heads)
        total = (num_heads + 2 * self.num_kv_heads * tp_size) * head_dim
        super().__init__(hidden_size, total, bias)

    def weight_loader(self, param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None) -> None:
        if shard_id is None:  # the checkpoint stores q, k and v already fused (Qwen2-VL's ViT)
            start = 0
            for shard, size in zip("qkv", self.checkpoint_sizes, strict=True):
                self.weight_loader(param, loaded.narrow(0, start, size), shard)
                start += size
            return
        if shard_id not in ("q", "k", "v"):
            raise ValueError(f"a fused q/k/v projection has no shard {shard_id!r}")
        q_size = self.num_heads * self.head_dim
        kv_size = self.num_kv_heads * self.head_dim
        if shard_id == "q":
            offset, size, rank = 0, q_size, self.tp_rank
        else:
            offset = q_size if shard_id == "k" else q_size + kv_size
            size, rank = kv_size, self.tp_rank // self.kv_replicas
        copy_weight(param.narrow(0, offset, size), loaded.narrow(0, rank * size, size))


class RowParallelLinear(_PackableLinear):
    """y = x W^T + b with W's input columns split across ranks; partial sums all-reduced."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.tp_rank, self.tp_size = tp_rank_and_size()
        if in_features % self.tp_size:
            raise ValueError(f"input size {in_features} does not divide by tp size {self.tp_size}")
        self.weight = _param(out_features, in_features // self.tp_size)
        set_weight_loader(self.weight, self.weight_loader)
        self.bias = _param(out_features) if bias else None
        if self.bias is not None:  # whole on every rank
            set_weight_loader(self.bias, default_weight_loader)

    def weight_loader(self, param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None) -> None:
        refuse_shard(shard_id)
        size = param.shape[1]
        copy_weight(param, loaded.narrow(1, self.tp_rank * size, size))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """x W^T + b, plus `residual` when given (a block's skip connection, added inside the matmul when packed)."""
        # The bias and the residual join on one rank only, so the all-reduce adds them exactly once.
        bias = self.bias if self.tp_rank == 0 else None
        if residual is None or self.tp_rank != 0:
            y = self.matmul(x, bias)
        else:
            y = self.matmul_then(x, bias, "add", residual)
        return all_reduce_sum(y)
