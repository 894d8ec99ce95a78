"""What the engine takes in, free of any wire format: token ids as numpy arrays, and each input's image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ImageInput:
    """One input's preprocessed image, as its model's vision tower consumes it."""

    pixel_values: np.ndarray  # Qwen2-VL: (num_patches, patch_dim) float32; CLIP: (3, height, width) float32
    grid_thw: tuple[int, int, int] | None = None  # Qwen2-VL: patches along time, height, width
    num_tokens: int = 0  # its cost in the token budget (CLIP: patches + CLS; 0 when its tokens are in the ids)


class Embedder(Protocol):
    """What the scheduler runs a batch on: the ModelRunner, or a wrapper around it."""

    def embed(
        self,
        sequences: list[np.ndarray],
        images: list[ImageInput | None] | None = None,
        token_types: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Token-id arrays (and each one's image, or each query-document pair's token types) -> (num_seqs, dim) float32."""
        ...
