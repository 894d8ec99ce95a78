"""oneDNN-packed linear weights on the CPU: the same matmul, faster than F.linear (2x on a few rows)."""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Activations oneDNN can apply inside the matmul: HF config name -> (oneDNN attr, algorithm).
FUSABLE_ACTIVATIONS = {
    "gelu": ("gelu", "none"),
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "relu": ("relu", ""),
    "silu": ("swish", ""),
    "swish": ("swish", ""),
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


# oneDNN builds and caches one primitive per matmul shape, and every new token count is a new shape: under
# load it keeps building primitives and its cache keeps growing. Padded rows bound the shapes instead: exact up
# to EXACT_ROWS, then 16 steps per power of two (at most 1/16 more rows), which the scheduler's warm-up builds
# once (ModelRunner.warmup). The model runner pads a whole batch once, with extra sequences
# (padding_sequence_lengths), so every layer sees a bucket's rows without a copy; a packed linear still pads
# what reaches it unpadded (a vision tower's patches). EMBEDSERVE_PAD_ROWS=0 turns padding off, 1 on; unset,
# it is on in both dtypes. docs/benchmarks.md, "Memory work: padded rows"; docs/reliability.md, "Memory".
EXACT_ROWS = 32
STEPS_PER_OCTAVE = 16
PAD_ROWS: bool | None = {"1": True, "0": False}.get(os.environ.get("EMBEDSERVE_PAD_ROWS", ""))
# Longest padding sequence: short enough that its attention costs next to nothing, long enough that one or two
# cover the padding of any batch the scheduler forms.
PADDING_SEQUENCE_TOKENS = 128


def pads_rows(dtype: torch.dtype) -> bool:
    """Whether packed linears of this dtype pad their rows: the environment's choice, else always."""
    return PAD_ROWS if PAD_ROWS is not None else dtype in (torch.float32, torch.bfloat16)


def padded_rows(rows: int) -> int:
    """`rows` rounded up to its bucket."""
    if rows <= EXACT_ROWS:
        return rows
    step = (1 << ((rows - 1).bit_length() - 1)) // STEPS_PER_OCTAVE
    return -(-rows // step) * step


def padding_sequence_lengths(num_tokens: int, context_length: int) -> list[int]:
    """Lengths of the extra sequences that bring a batch of `num_tokens` to its bucket (none when exact)."""
    missing = padded_rows(num_tokens) - num_tokens
    longest = min(PADDING_SEQUENCE_TOKENS, context_length)
    return [longest] * (missing // longest) + ([missing % longest] if missing % longest else [])


def row_bucket_batches(max_tokens: int, context_length: int) -> list[list[int]]:
    """Sequence lengths for one warm-up batch per row bucket up to `max_tokens`.

    Each batch holds exactly its bucket's token count; the lengths cycle through 1..context_length across the
    batches, so attention meets every sequence length too.
    """
    buckets = sorted({padded_rows(rows) for rows in range(1, max_tokens + 1)})
    next_length = 1
    batches = []
    for bucket in buckets:
        lengths: list[int] = []
        while (remaining := bucket - sum(lengths)) > 0:
            lengths.append(min(next_length, remaining))
            next_length = next_length % context_length + 1
        batches.append(lengths)
    return batches


def packed_linear(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None
) -> torch.Tensor:
    attr, algorithm = FUSABLE_ACTIVATIONS[activation] if activation else ("none", "")
    rows = x.shape[0]
    bucket = padded_rows(rows) if x.dim() == 2 and pads_rows(x.dtype) else rows
    if bucket == rows:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, attr, [], algorithm)
    # Rows are independent in a matmul: the zero rows added change nothing in the real ones and are cut off.
    padded = x.new_zeros((bucket, x.shape[1]))
    padded[:rows] = x
    return torch.ops.mkldnn._linear_pointwise(padded, packed, bias, attr, [], algorithm)[:rows]


def packed_linear_then(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, op: str, other: torch.Tensor
) -> torch.Tensor:
    """(x W^T + bias) `op` other ("add" or "mul"): one oneDNN call, or the op after the matmul where the rows
    need padding first (`other` would have to be padded too)."""
    if x.dim() == 2 and pads_rows(x.dtype) and padded_rows(x.shape[0]) != x.shape[0]:
        y = packed_linear(x, packed, bias)
        return y.add_(other) if op == "add" else y.mul_(other)
    return torch.ops.mkldnn._linear_pointwise.binary(x, other, packed, bias, op)


def pack_model_linears(model: nn.Module) -> int:
    """Packs every layer that offers `pack_for_cpu` (our parallel linears); returns how many were packed."""
    count = 0
    for module in model.modules():
        pack = getattr(module, "pack_for_cpu", None)
        if pack is not None and pack():
            count += 1
    logger.info("packed %d linear layers for oneDNN", count)
    return count
