"""This process's place in the tensor-parallel group, read from torch.distributed."""

from __future__ import annotations

import torch
import torch.distributed as dist


def tp_rank_and_size() -> tuple[int, int]:
    """(rank, world size) of the TP group; (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(x)
    return x
