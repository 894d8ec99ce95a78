"""Rotary position embeddings (rotate-half layout): 1D for decoders, M-RoPE for Qwen2-VL's decoder, 2D for its ViT.

A rotary turns a batch's positions into (cos, sin) once; every layer then rotates its q and k with `apply_rotary`.
Angles are computed in float32 whatever the model dtype: bf16 angles would drift at large positions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from engine.arch_config import RopeConfig
from engine.layers.compiled_elementwise import COMPILED


def inverse_frequencies(dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """(dim // 2,) float32 angular frequencies of the default schedule."""
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    return 1.0 / (theta**exponents)


def scaled_inverse_frequencies(head_dim: int, rope: RopeConfig) -> torch.Tensor:
    """The default frequencies, scaled as the config's rope type says (linear, llama3)."""
    inv_freq = inverse_frequencies(head_dim, rope.theta)
    if rope.rope_type == "linear":
        return inv_freq / rope.factor
    if rope.rope_type == "llama3":
        return _llama3_frequencies(inv_freq, rope)
    return inv_freq


def _llama3_frequencies(inv_freq: torch.Tensor, rope: RopeConfig) -> torch.Tensor:
    # Long wavelengths are slowed by `factor`, short ones kept, and the band between blended smoothly.
    context = rope.original_max_position_embeddings
    wavelength = 2 * math.pi / inv_freq
    long_limit = context / rope.low_freq_factor
    short_limit = context / rope.high_freq_factor
    scaled = torch.where(wavelength > long_limit, inv_freq / rope.factor, inv_freq)
    blend = (context / wavelength - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)
    blended = (1 - blend) * scaled / rope.factor + blend * scaled
    in_band = (wavelength >= short_limit) & (wavelength <= long_limit)
    return torch.where(in_band, blended, scaled)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (num_tokens, heads, head_dim); cos/sin: (num_tokens, 1, head_dim // 2), broadcast over heads.

    The rotate-half rotation, first' = first cos - second sin and second' = second cos + first sin, written half by
    half into one new tensor: no rotated copy of x and no sum of two full products (a sixth of a bfloat16 decoder's
    time went to those passes).
    """
    compiled = COMPILED.get("rotary")
    if compiled is not None:
        return compiled(x, cos, sin)
    first, second = x.chunk(2, dim=-1)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    out_first, out_second = out.chunk(2, dim=-1)
    torch.mul(first, cos, out=out_first).addcmul_(second, sin, value=-1)
    torch.mul(second, cos, out=out_second).addcmul_(first, sin)
    return out


def _cos_sin(freqs: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """freqs: (num_tokens, head_dim // 2) float32 angles -> cos, sin: (num_tokens, 1, head_dim // 2) in `dtype`."""
    angles = freqs[:, None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


class RotaryEmbedding(nn.Module):
    """Each token rotated by its own position in its sequence."""

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, rope: RopeConfig):
        super().__init__()
        self.register_buffer("inv_freq", scaled_inverse_frequencies(head_dim, rope), persistent=False)

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions: (num_tokens,)."""
        return _cos_sin(positions.float()[:, None] * self.inv_freq[None, :], dtype)


class MultimodalRotaryEmbedding(nn.Module):
    """Qwen2-VL's M-RoPE: positions have three axes (time, height, width); each frequency band follows one."""

    inv_freq: torch.Tensor
    freq_axis: torch.Tensor

    def __init__(self, head_dim: int, rope: RopeConfig):
        super().__init__()
        section = rope.mrope_section or ()  # sums to head_dim / 2, as Qwen2VLTextConfig checks
        self.register_buffer("inv_freq", inverse_frequencies(head_dim, rope.theta), persistent=False)
        # which axis (0 time, 1 height, 2 width) drives each frequency
        axis = np.concatenate([np.full(n, i % 3) for i, n in enumerate(section)])
        self.register_buffer("freq_axis", torch.from_numpy(axis).long(), persistent=False)

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions: (3, num_tokens)."""
        freqs = positions[..., None].float() * self.inv_freq.to(positions.device)  # (3, num_tokens, head_dim / 2)
        axis = self.freq_axis.to(positions.device)  # from_numpy built it on the host
        freqs = freqs.gather(0, axis.expand(1, freqs.shape[1], -1)).squeeze(0)  # (num_tokens, head_dim / 2)
        return _cos_sin(freqs, dtype)


def vision_rotary_cos_sin(
    grids_thw: list[tuple[int, int, int]], merge_size: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """2D RoPE of Qwen2-VL's ViT, float32 (num_patches, 1, head_dim / 2): half the frequencies follow rows, half columns.

    Patches come in merge-window order (each merge_size x merge_size window contiguous), as the processor lays them out.
    """
    rows, cols = [], []
    for t, h, w in grids_thw:
        hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        window = (h // merge_size, merge_size, w // merge_size, merge_size)
        rows.append(np.tile(hh.reshape(window).transpose(0, 2, 1, 3).ravel(), t))
        cols.append(np.tile(ww.reshape(window).transpose(0, 2, 1, 3).ravel(), t))
    pos = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)])).to(device)  # (2, num_patches)
    freqs = pos[..., None].float() * inverse_frequencies(head_dim // 2, theta, device)  # (2, num_patches, head_dim / 4)
    return _cos_sin(torch.cat((freqs[0], freqs[1]), dim=-1), torch.float32)
