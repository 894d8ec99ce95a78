"""RMSNorm as decoders define it: statistics in float32, the scale applied in float32 (Gemma's as 1 + weight)."""

from __future__ import annotations

import torch
from torch import nn

from engine.layers.compiled_elementwise import COMPILED


def _normalized_float32(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / rms(x) over the last dimension, in float32, as a new tensor."""
    # One float32 copy, one reduction pass over it, then in place: every pass over the activations counts on two
    # cores (x.pow(2).mean() and mixed-dtype products took three times as long in bfloat16).
    x32 = x.to(torch.float32, copy=True)
    inverse_rms = torch.linalg.vector_norm(x32, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps).rsqrt_()
    return x32.mul_(inverse_rms)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size), requires_grad=False)
        self.eps = eps

    def scale(self) -> torch.Tensor:
        """The factor each normalized value is multiplied by, in float32."""
        return self.weight.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # transformers casts back to the model dtype before Llama's weight; multiplying in float32 first rounds once
        # instead of twice (identical in float32, within bfloat16's rounding otherwise).
        compiled = COMPILED.get("rms_norm")
        if compiled is not None:
            return compiled(x, self.scale(), self.eps)
        return _normalized_float32(x, self.eps).mul_(self.scale()).to(x.dtype)


class GemmaRMSNorm(RMSNorm):
    """Gemma's checkpoints store the scale less one; the product is taken in float32 before the cast back."""

    def scale(self) -> torch.Tensor:
        return 1.0 + self.weight.float()
