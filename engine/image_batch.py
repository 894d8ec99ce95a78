"""The images of a packed batch: each sequence's pixels on the device, for the vision towers of multimodal models."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from engine.forward_batch import ForwardBatch
from engine.inputs import ImageInput


@dataclass
class SequenceImage:
    pixel_values: torch.Tensor  # Qwen2-VL: (num_patches, patch_dim); CLIP: (3, height, width)
    grid_thw: tuple[int, int, int] | None  # Qwen2-VL only


@dataclass
class ImageBatch:
    per_sequence: list[SequenceImage | None]  # aligned with the batch's sequences
    token_ids: list[np.ndarray]  # host copies of each sequence's ids, for layouts computed on the host (M-RoPE)

    @classmethod
    def from_inputs(
        cls, images: list[ImageInput | None], sequences: list[np.ndarray], device: torch.device, dtype: torch.dtype
    ) -> ImageBatch:
        return cls([None if im is None else _to_device(im, device, dtype) for im in images], sequences)


def _to_device(image: ImageInput, device: torch.device, dtype: torch.dtype) -> SequenceImage:
    with warnings.catch_warnings():
        # The scheduler's pixels are a read-only view into the received message, and nothing writes to them;
        # torch warns about that regardless.
        warnings.simplefilter("ignore", UserWarning)
        pixels = torch.from_numpy(image.pixel_values)  # no copy
    # Copies only when the device or dtype differ (GPU, or a bfloat16 model); float32 on CPU stays a view.
    return SequenceImage(pixels.to(device=device, dtype=dtype), image.grid_thw)


def attention_batch(seq_lens: list[int], device: torch.device) -> ForwardBatch:
    """Segment offsets for attention over embeddings that have no token ids (vision patches)."""
    cu = np.zeros(len(seq_lens) + 1, dtype=np.int32)
    np.cumsum(seq_lens, out=cu[1:])
    empty = torch.empty(0, dtype=torch.long, device=device)
    return ForwardBatch(empty, empty, list(seq_lens), torch.from_numpy(cu).to(device), max(seq_lens))
