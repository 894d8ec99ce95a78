"""Attention masks the CPU paths share: the band a local layer's tokens see."""

from __future__ import annotations

import torch


def band_mask(length: int, window: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(length, length) bool: True where query i may see key j, i.e. i - left <= j <= i + right."""
    left, right = window
    positions = torch.arange(length, device=device)
    offset = positions.unsqueeze(0) - positions.unsqueeze(1)  # j - i
    return (offset >= -left) & (offset <= right)


def band_window(window: tuple[int, int] | None, causal: bool) -> tuple[int, int] | None:
    """The band a layer attends within: a causal layer sees nothing to its right, whatever its window says."""
    return (window[0], 0) if window is not None and causal else window
