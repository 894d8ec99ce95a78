"""sentence-transformers Dense modules on pooled vectors (EmbeddingGemma's projections), weights from their folders.

They run in the scheduler process on the model's device and dtype, after pooling and before the result process
truncates and normalizes, in modules.json's order.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from engine.layers.activation import activation_by_name
from engine.st_config import DENSE_WEIGHT_FILES, DenseModule


class DenseProjection(nn.Module):
    """activation(x W^T + b), plus x (or its projection R x when the sizes differ) with `use_residual`."""

    def __init__(self, spec: DenseModule):
        super().__init__()
        self.linear = nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        self.use_residual = spec.use_residual
        self.residual = (
            nn.Linear(spec.in_features, spec.out_features, bias=False)
            if spec.use_residual and spec.in_features != spec.out_features
            else None
        )
        self.activation = activation_by_name(spec.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.linear(x))
        if self.use_residual:
            out = out + (x if self.residual is None else self.residual(x))
        return out


class DenseStack(nn.Module):
    """The folder's Dense modules in order; built in the default dtype and device, like the model."""

    def __init__(self, specs: tuple[DenseModule, ...]):
        super().__init__()
        projections = [DenseProjection(spec) for spec in specs]
        for projection, spec in zip(projections, specs, strict=True):
            # names as sentence-transformers saves them (linear.weight, linear.bias, residual.weight); strict
            projection.load_state_dict(_read_weights(Path(spec.path)))
        self.dtype = projections[0].linear.weight.dtype
        self.projections = nn.ModuleList(projections)
        self.requires_grad_(False)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(num_seqs, hidden) float32 -> (num_seqs, last out_features) float32, computed in the weights' dtype."""
        x = pooled.to(self.dtype)
        for projection in self.projections:
            x = projection(x)
        return x.float()


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_file, torch_file = (folder / name for name in DENSE_WEIGHT_FILES)
    if safetensors_file.is_file():
        return load_file(str(safetensors_file))
    return torch.load(torch_file, map_location="cpu", weights_only=True)  # tensors only: no code runs
