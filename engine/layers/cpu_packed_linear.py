"""oneDNN-packed linear weights on the CPU: the same matmul, faster than F.linear (2x on a few rows)."""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Activations oneDNN can apply inside the matmul: HF config name -> (oneDNN attr, algorithm).
FUSABLE_ACTIVATIONS = {
    "gelu": ("gelu", "none"),
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "relu": ("relu", ""),
}


def packing_supported(weight: torch.Tensor) -> bool:
    """True on CPU builds with oneDNN for float32, and for bfloat16 where the CPU has native bf16 support."""
    if weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if not all(hasattr(torch.ops.mkldnn, op) for op in ("_linear_pointwise", "_reorder_linear_weight")):
        return False  # private ops (Inductor's): a torch release without them gets the plain path
    if weight.dtype == torch.float32:
        return True
    return weight.dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    # The batch-size hint only picks the initial blocking; measured: any number of rows runs at full speed.
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 2048)


def packed_linear(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None
) -> torch.Tensor:
    attr, algorithm = FUSABLE_ACTIVATIONS[activation] if activation else ("none", "")
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, attr, [], algorithm)


def pack_model_linears(model: nn.Module) -> int:
    """Packs every layer that offers `pack_for_cpu` (our parallel linears); returns how many were packed."""
    count = 0
    for module in model.modules():
        pack = getattr(module, "pack_for_cpu", None)
        if pack is not None and pack():
            count += 1
    logger.info("packed %d linear layers for oneDNN", count)
    return count
