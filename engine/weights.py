"""Streams (name, tensor) pairs from a folder's single or sharded safetensors files."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

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


def iterate_weights(
    model_path: str | Path, progress: bool = False, sliced: bool = False
) -> Iterator[tuple[str, torch.Tensor]]:
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


def load_renamed_weights(
    module: torch.nn.Module,
    weights: Iterator[tuple[str, torch.Tensor]],
    map_name,
) -> None:
    """Copy checkpoint tensors into `module`'s parameters.

    `map_name(hf_name)` returns (parameter name, shard id or None), or None to skip the tensor.
    Every parameter must be loaded; an unknown tensor is an error, not a silent skip.
    """
    from engine.layers.linear import default_weight_loader

    params = dict(module.named_parameters())
    loaded: set[str] = set()
    for hf_name, tensor in weights:
        mapped = map_name(hf_name)
        if mapped is None:
            continue
        name, shard_id = mapped
        if name not in params:
            raise ValueError(f"unexpected weight {hf_name!r} in checkpoint")
        param = params[name]
        loader = getattr(param, "weight_loader", default_weight_loader)
        if shard_id is None:
            loader(param, tensor)
        else:
            loader(param, tensor, shard_id)
        loaded.add(name)
    missing = sorted(set(params) - loaded)
    if missing:
        raise ValueError(f"checkpoint lacks weights for {missing[:5]}{' ...' if len(missing) > 5 else ''}")
