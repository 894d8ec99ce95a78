"""Layer stacks cut to one layer of each kind while the warm-up runs, so building every primitive costs one layer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


def _kind(layer: nn.Module) -> tuple:
    """Layers of one class with the same attention windows run the same matmul shapes and attention paths."""
    windows = tuple(getattr(module, "window", None) for module in layer.modules())
    return type(layer), windows, getattr(layer, "layer_type", None), getattr(layer, "local", None)


@contextlib.contextmanager
def one_layer_of_each_kind(model: nn.Module) -> Iterator[None]:
    """Every `layers` ModuleList in `model` holds only the first layer of each kind until the block ends.

    oneDNN keys its primitives on shapes, not on weights, so one layer of each kind builds what every layer of
    that kind will use; the other layers' forwards would add time and nothing else.
    """
    stacks = [
        (parent, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if name == "layers" and isinstance(child, nn.ModuleList)
    ]
    for parent, layers in stacks:
        kept: dict[tuple, nn.Module] = {}
        for layer in layers:
            kept.setdefault(_kind(layer), layer)
        parent.layers = nn.ModuleList(kept.values())
    try:
        yield
    finally:
        for parent, layers in stacks:
            parent.layers = layers
