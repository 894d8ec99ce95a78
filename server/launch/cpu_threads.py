"""Torch threads per scheduler rank on the CPU: this node's cores shared out among its ranks, not multiplied."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which a container's cpuset narrows)."""
    return len(os.sched_getaffinity(0))


def threads_per_rank(requested: int | None, device: str, local_ranks: int, cores: int, environ: dict) -> int | None:
    """`--num-threads` when given; on the CPU with several ranks on this node, each gets its share of the cores.

    Without this every rank would take torch's default, all the cores: two replicas on two cores would run four
    OpenMP threads that preempt each other. One rank, a GPU, or OMP_NUM_THREADS set keeps torch's choice (None).
    """
    if requested is not None or not device.startswith("cpu") or local_ranks == 1 or "OMP_NUM_THREADS" in environ:
        return requested
    return max(1, cores // local_ranks)
