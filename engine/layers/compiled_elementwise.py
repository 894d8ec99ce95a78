"""--enable-torch-compile on the CPU: RMSNorm and the rotary compiled by Inductor, each into one C++ loop.

Eager torch runs each of these steps as several passes over the activations (a float32 copy, a reduction, products,
a cast back): on two cores they cost a bfloat16 decoder about a quarter of its forward. Compiled, each is one pass
(measured 2.9x faster for RMSNorm at 2048 x 1024, 3.4x for q's norm and rotary). Opt-in, as in SGLang: compiling
needs a C++ compiler at startup and takes seconds (cached on disk after the first start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)

# Filled by compile_elementwise; empty, every caller runs its eager code.
COMPILED: dict[str, Callable[..., torch.Tensor]] = {}


def rms_norm_formula(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    """x / rms(x) * scale, statistics and product in float32, back in x's dtype: what Inductor fuses."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * scale).to(x.dtype)


def rotary_formula(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The rotate-half rotation with half-width cos and sin, as engine.layers.rotary.apply_rotary computes it."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)


def compile_elementwise(dtype: torch.dtype) -> bool:
    """Compiles both steps and checks them on a small input of `dtype`; False (eager kept) where that fails."""
    try:
        compiled: dict[str, Callable[..., torch.Tensor]] = {
            "rms_norm": torch.compile(rms_norm_formula, dynamic=True),
            "rotary": torch.compile(rotary_formula, dynamic=True),
        }
        x = torch.randn(5, 3, 8).to(dtype)
        cos, sin = torch.randn(5, 1, 4).to(dtype), torch.randn(5, 1, 4).to(dtype)
        for name, args in (("rms_norm", (x, torch.ones(8), 1e-6)), ("rotary", (x, cos, sin))):
            expected = (rms_norm_formula if name == "rms_norm" else rotary_formula)(*args)
            torch.testing.assert_close(compiled[name](*args), expected, atol=1e-2, rtol=1e-2)
    except Exception as error:  # no C++ compiler, an Inductor bug: the server still serves, eagerly
        logger.warning("--enable-torch-compile: compiling failed, running eager instead (%s)", error)
        return False
    COMPILED.update(compiled)
    logger.info("--enable-torch-compile: RMSNorm and rotary compiled by Inductor")
    return True
