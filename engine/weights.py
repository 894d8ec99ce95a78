"""Streams (name, tensor) pairs from a folder's safetensors files and loads them by a family's weight-name table.

Each parameter may carry its own loader (`set_weight_loader`): a tensor-parallel layer's copies only its rank's
slice, a fused projection's places each checkpoint tensor at its shard's offset.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeAlias

import torch
from safetensors import safe_open
from tqdm import tqdm


def safetensors_files(model_path: str | Path) -> list[Path]:
    root = Path(model_path)
    index = root / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [root / name for name in sorted(set(weight_map.values()))]
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {root}")
    return files


class CheckpointTensor:
    """A tensor still in its safetensors file: a tensor-parallel rank reads only the rows or columns it keeps."""

    def __init__(self, file_slice):
        self._slice = file_slice
        self.shape = torch.Size(file_slice.get_shape())

    def narrow(self, dim: int, start: int, length: int) -> torch.Tensor:
        index = [slice(None)] * len(self.shape)
        index[dim] = slice(start, start + length)
        return self._slice[tuple(index)]

    def full(self) -> torch.Tensor:
        return self._slice[:]


# What a loader receives: a tensor in memory, or one still in its file (tensor-parallel loading).
LoadedTensor: TypeAlias = torch.Tensor | CheckpointTensor
# Which part of a fused parameter a checkpoint tensor fills: "q"/"k"/"v" of qkv_proj, 0/1 of gate_up_proj.
ShardId: TypeAlias = str | int


class WeightLoader(Protocol):
    """Copies a checkpoint tensor, or one shard of a fused parameter when `shard_id` is given, into `param`."""

    def __call__(self, param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None, /) -> None: ...


_LOADER_ATTRIBUTE = "weight_loader"  # on the parameter itself, so it follows the parameter wherever it goes


def set_weight_loader(param: torch.Tensor, loader: WeightLoader) -> None:
    setattr(param, _LOADER_ATTRIBUTE, loader)


def weight_loader_of(param: torch.Tensor) -> WeightLoader:
    """The loader `set_weight_loader` gave `param`, else `default_weight_loader`."""
    loader: WeightLoader = getattr(param, _LOADER_ATTRIBUTE, default_weight_loader)
    return loader


def copy_weight(destination: torch.Tensor, loaded: LoadedTensor) -> None:
    """Copy a whole tensor; sharded loaders call it with their slice (`narrow` reads only that from disk)."""
    if isinstance(loaded, CheckpointTensor):
        loaded = loaded.full()
    if destination.shape != loaded.shape:
        raise ValueError(f"weight shape {tuple(loaded.shape)} does not match parameter {tuple(destination.shape)}")
    destination.data.copy_(loaded)


def refuse_shard(shard_id: ShardId | None) -> None:
    """For a loader of a parameter that is not fused: a weight-name table that gives it a shard is a bug."""
    if shard_id is not None:
        raise ValueError(f"checkpoint shard {shard_id!r} names a parameter that is not fused")


def default_weight_loader(param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None) -> None:
    """The loader of a parameter that has none of its own: the checkpoint tensor is the whole parameter."""
    refuse_shard(shard_id)
    copy_weight(param, loaded)


def iterate_weights(
    model_path: str | Path, progress: bool = False, sliced: bool = False
) -> Iterator[tuple[str, LoadedTensor]]:
    """Yield every tensor once, one file open at a time, so memory holds one tensor beyond the model.

    With `progress`, a bar on stderr counts the tensors loaded (shown when the log level is info or lower).
    With `sliced`, each tensor comes as a CheckpointTensor, read from disk only as far as its loader asks:
    a tensor-parallel rank never holds another rank's share of a weight.
    """
    files = safetensors_files(model_path)
    show = progress and logging.getLogger(__name__).isEnabledFor(logging.INFO)
    total = sum(_num_tensors(file) for file in files) if show else None  # reads only the headers
    with tqdm(total=total, desc="Loading weights", unit="tensor", disable=not show) as bar:
        for file in files:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    yield name, (CheckpointTensor(f.get_slice(name)) if sliced else f.get_tensor(name))
                    bar.update(1)


def _num_tensors(file: Path) -> int:
    with safe_open(str(file), framework="pt") as f:
        return len(f.keys())


@dataclass(frozen=True)
class WeightNames:
    """How a family's checkpoint names become its parameter names; `load_named_weights` applies the table.

    In order: a name that `skip` matches whole is not loaded; the first `fused` substring found turns the tensor
    into one shard of a fused parameter (q of qkv_proj, gate of gate_up_proj); then every `renames` pattern is
    substituted, in the order written.
    """

    renames: Mapping[str, str] = field(default_factory=dict)  # regex -> replacement
    fused: Mapping[str, tuple[str, str | int]] = field(default_factory=dict)  # substring -> (replacement, shard id)
    skip: str | None = None  # regex over the whole name

    def rename(self, checkpoint_name: str) -> tuple[str, str | int | None] | None:
        """(parameter name, shard id or None), or None for a tensor the model does not load."""
        if self.skip is not None and re.fullmatch(self.skip, checkpoint_name):
            return None
        name, shard_id = checkpoint_name, None
        for theirs, (ours, shard) in self.fused.items():
            if theirs in name:
                name, shard_id = name.replace(theirs, ours), shard
                break
        for pattern, replacement in self.renames.items():
            name = re.sub(pattern, replacement, name)
        return name, shard_id


def load_named_weights(
    module: torch.nn.Module, weights: Iterable[tuple[str, LoadedTensor]], names: WeightNames
) -> None:
    """Copy checkpoint tensors into `module`'s parameters, each through its own weight loader.

    Every parameter must be loaded; an unknown tensor is an error, not a silent skip.
    """
    params = dict(module.named_parameters())
    loaded: set[str] = set()
    for checkpoint_name, tensor in weights:
        mapped = names.rename(checkpoint_name)
        if mapped is None:
            continue
        name, shard_id = mapped
        if name not in params:
            raise ValueError(f"unexpected weight {checkpoint_name!r} in checkpoint")
        param = params[name]
        weight_loader_of(param)(param, tensor, shard_id)
        loaded.add(name)
    missing = sorted(set(params) - loaded)
    if missing:
        raise ValueError(f"checkpoint lacks weights for {missing[:5]}{' ...' if len(missing) > 5 else ''}")
