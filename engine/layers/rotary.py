"""Rotary position embedding (rotate-half layout) with the default, linear and llama3 frequency schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.layers.rope_config import RopeConfig


def inverse_frequencies(rope: RopeConfig) -> torch.Tensor:
    """(head_dim // 2,) float32 angular frequencies, scaled as the config's rope type says."""
    exponents = torch.arange(0, rope.head_dim, 2, dtype=torch.int64).float() / rope.head_dim
    inv_freq = 1.0 / (rope.theta**exponents)
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


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotates q and k by each token's own position; angles are computed in float32 per batch."""

    def __init__(self, rope: RopeConfig):
        super().__init__()
        # float32 whatever the model dtype: bf16 angles would drift at large positions
        self.register_buffer("inv_freq", inverse_frequencies(rope).to(torch.float32), persistent=False)

    def forward(self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions: (num_tokens,); q: (num_tokens, heads, head_dim); k: (num_tokens, kv_heads, head_dim)."""
        angles = positions.float()[:, None] * self.inv_freq[None, :]  # (num_tokens, head_dim // 2)
        angles = torch.cat((angles, angles), dim=-1)[:, None, :]  # (num_tokens, 1, head_dim)
        cos, sin = angles.cos().to(q.dtype), angles.sin().to(q.dtype)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
