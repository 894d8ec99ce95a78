"""What the image processor will make of an image, computed from its size before the processor runs.

CLIP's processor resizes the shortest edge and then crops, so a thin image becomes a huge intermediate;
Qwen2-VL's resizes to its pixel budget (smart_resize). Knowing the sizes first lets the frontend refuse what
would exceed its bounds and reserve the image's tokens before decoding a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.inputs.media_errors import MediaError

MAX_ASPECT_RATIO = 200  # Qwen2-VL's own limit, applied to every model
BYTES_PER_FLOAT = 4


@dataclass(frozen=True)
class ImagePlan:
    resized_pixels: int  # the processor's largest intermediate (the resized image), in pixels
    output_bytes: int  # the float32 pixel values handed to the engine
    num_tokens: int  # positions the image takes in the model


class ImageGeometry:
    """Reads the processor's settings once; `plan(width, height)` sizes an image's preprocessing."""

    def __init__(self, kind: str, image_processor, clip_tokens: int = 0):
        """`clip_tokens`: a CLIP image's cost in the token budget (the model config's `vision.tokens_per_image`)."""
        self.kind = kind
        size = dict(image_processor.size or {})
        if kind == "qwen2_vl":
            from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

            self._smart_resize = smart_resize
            self.patch_size = int(image_processor.patch_size)
            self.merge_size = int(image_processor.merge_size)
            self.temporal_patch_size = int(image_processor.temporal_patch_size)
            self.min_pixels = int(size.get("shortest_edge") or image_processor.min_pixels)
            self.max_pixels = int(size.get("longest_edge") or image_processor.max_pixels)
        else:
            self.clip_tokens = clip_tokens
            self.do_resize = bool(image_processor.do_resize)
            self.shortest_edge = size.get("shortest_edge")
            self.fixed_size = (size["height"], size["width"]) if "height" in size and "width" in size else None
            if self.do_resize and self.shortest_edge is None and self.fixed_size is None:
                raise ValueError(f"unsupported CLIP image processor size {size}")
            crop = dict(image_processor.crop_size or {}) if image_processor.do_center_crop else {}
            self.crop = (crop["height"], crop["width"]) if crop else None

    @property
    def max_output_bytes(self) -> int:
        """The largest pixel-value array one image can produce, whatever its size."""
        if self.kind == "qwen2_vl":
            return self._qwen_output_bytes(self.max_pixels)
        if self.crop is not None:
            return 3 * self.crop[0] * self.crop[1] * BYTES_PER_FLOAT
        return 0  # no crop: bounded by the resized pixels, checked per image

    def plan(self, width: int, height: int) -> ImagePlan:
        """The image's preprocessing sizes; a MediaError for aspect ratios the models refuse."""
        if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
            raise MediaError(
                f"image is {width}x{height}, an aspect ratio beyond {MAX_ASPECT_RATIO}:1, which is refused"
            )
        if self.kind == "qwen2_vl":
            factor = self.patch_size * self.merge_size
            h, w = self._smart_resize(height, width, factor, self.min_pixels, self.max_pixels)
            patches = (h // self.patch_size) * (w // self.patch_size)
            return ImagePlan(h * w, self._qwen_output_bytes(h * w), patches // self.merge_size**2)
        h, w = self._clip_resized(width, height)
        out_h, out_w = self.crop or (h, w)
        return ImagePlan(h * w, 3 * out_h * out_w * BYTES_PER_FLOAT, self.clip_tokens)

    def _qwen_output_bytes(self, pixels: int) -> int:
        # each 14x14 patch repeated temporal_patch_size times, 3 channels, float32
        return pixels // self.patch_size**2 * 3 * self.temporal_patch_size * self.patch_size**2 * BYTES_PER_FLOAT

    def _clip_resized(self, width: int, height: int) -> tuple[int, int]:
        if not self.do_resize:
            return height, width
        if self.shortest_edge is None:
            if self.fixed_size is None:
                raise ValueError("the image processor's size has neither shortest_edge nor height and width")
            return self.fixed_size
        from transformers.image_transforms import get_resize_output_image_size
        from transformers.image_utils import ChannelDimension

        # transformers' own arithmetic on a zero-stride stand-in of the image's shape (no memory behind it)
        stand_in = np.broadcast_to(np.zeros(1, np.uint8), (3, height, width))
        h, w = get_resize_output_image_size(
            stand_in, size=self.shortest_edge, default_to_square=False, input_data_format=ChannelDimension.FIRST
        )
        return int(h), int(w)
