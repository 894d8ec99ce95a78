"""Synthetic test images: large in pixels, small in bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def gradient_png(width: int, height: int) -> bytes:
    """A horizontal gradient, every row the same: a large image in few PNG bytes."""
    row = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.broadcast_to(row[None, :, None], (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG")
    return buffer.getvalue()
