"""Rotary embeddings of Qwen2-VL: M-RoPE positions (time, height, width) for the language model, 2D RoPE for the ViT."""

from __future__ import annotations

import numpy as np
import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def inverse_frequencies(dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim))


def mrope_positions(
    token_ids: np.ndarray, image_token_id: int, grids_thw: list[tuple[int, int, int]], merge_size: int
) -> np.ndarray:
    """(3, seq_len) int64 positions of one sequence.

    Text tokens count up on all three axes. Each run of image tokens lays out its (t, h, w) grid of merged patches
    from the position where the run starts; text resumes one past the grid's largest extent.
    """
    positions = np.empty((3, len(token_ids)), dtype=np.int64)
    is_image = token_ids == image_token_id
    # starts and ends of runs of image tokens
    edges = np.flatnonzero(np.diff(np.concatenate(([False], is_image, [False])).astype(np.int8)))
    runs = edges.reshape(-1, 2)
    if len(runs) != len(grids_thw):
        raise ValueError(f"{len(runs)} runs of image tokens but {len(grids_thw)} images")
    cursor = 0  # next token index
    next_position = 0
    for (start, end), (t, h, w) in zip(runs, grids_thw, strict=True):
        text_len = start - cursor
        positions[:, cursor:start] = np.arange(next_position, next_position + text_len)
        next_position += text_len
        grid_h, grid_w = h // merge_size, w // merge_size
        if end - start != t * grid_h * grid_w:
            raise ValueError(f"an image run of {end - start} tokens does not match its grid {t}x{grid_h}x{grid_w}")
        tt, hh, ww = np.meshgrid(np.arange(t), np.arange(grid_h), np.arange(grid_w), indexing="ij")
        positions[:, start:end] = np.stack([tt.ravel(), hh.ravel(), ww.ravel()]) + next_position
        next_position += max(t, grid_h, grid_w)
        cursor = end
    positions[:, cursor:] = np.arange(next_position, next_position + len(token_ids) - cursor)
    return positions


class MultimodalRotaryEmbedding(torch.nn.Module):
    """Rotates q and k by (3, num_tokens) positions: each frequency band follows one axis (mrope_section)."""

    def __init__(self, head_dim: int, theta: float, mrope_section: list[int]):
        super().__init__()
        if sum(mrope_section) != head_dim // 2:
            raise ValueError(f"mrope_section {mrope_section} must sum to head_dim / 2 = {head_dim // 2}")
        self.register_buffer("inv_freq", inverse_frequencies(head_dim, theta), persistent=False)
        # which axis (0 time, 1 height, 2 width) drives each frequency
        axis = np.concatenate([np.full(n, i % 3) for i, n in enumerate(mrope_section)])
        self.register_buffer("freq_axis", torch.from_numpy(axis).long(), persistent=False)

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions: (3, num_tokens) -> cos, sin: (num_tokens, 1, head_dim)."""
        inv_freq = self.inv_freq.to(positions.device)
        freqs = positions[..., None].float() * inv_freq  # (3, num_tokens, head_dim / 2)
        axis = self.freq_axis.to(positions.device)
        freqs = freqs.gather(0, axis.expand(1, freqs.shape[1], -1)).squeeze(0)  # (num_tokens, head_dim / 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype)[:, None, :], emb.sin().to(dtype)[:, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (num_tokens, heads, head_dim); cos/sin broadcast over heads."""
    return x * cos + rotate_half(x) * sin


def vision_rotary_cos_sin(
    grids_thw: list[tuple[int, int, int]], merge_size: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """2D RoPE of the ViT, float32 (num_patches, 1, head_dim): half the frequencies follow rows, half columns.

    Patches come in merge-window order (each merge_size x merge_size window contiguous), as the processor lays them out.
    """
    rows, cols = [], []
    for t, h, w in grids_thw:
        hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        window = (h // merge_size, merge_size, w // merge_size, merge_size)
        rows.append(np.tile(hh.reshape(window).transpose(0, 2, 1, 3).ravel(), t))
        cols.append(np.tile(ww.reshape(window).transpose(0, 2, 1, 3).ravel(), t))
    pos = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)])).to(device)  # (2, num_patches)
    inv_freq = inverse_frequencies(head_dim // 2, theta, device)
    freqs = pos[..., None].float() * inv_freq  # (2, num_patches, head_dim / 4)
    half = torch.cat((freqs[0], freqs[1]), dim=-1)
    emb = torch.cat((half, half), dim=-1)
    return emb.cos()[:, None, :], emb.sin()[:, None, :]
