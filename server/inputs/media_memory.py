"""The frontend's memory bound for images, per request and per server, from the flags (docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass

from server.inputs.image_geometry import MAX_ASPECT_RATIO, ImageGeometry
from server.launch.args import ServerArgs

# Bytes per decoded pixel while an image is decoded and converted: PIL's widest mode (4), the processor's
# RGB conversion (RGBA copy, white background, composite, RGB: 15), the array handed to the resize (3), margin.
DECODE_BYTES_PER_PIXEL = 32
# Bytes per pixel of the processor's resized image: CLIP resizes 8-bit RGB (the float copies come after the
# crop); Qwen2-VL rescales, normalizes and patchifies float32 copies (twice over for its temporal patch).
RESIZE_BYTES_PER_PIXEL = {"clip": 16, "qwen2_vl": 96}


@dataclass(frozen=True)
class ImageMemoryBound:
    per_image: int  # one image being decoded and preprocessed
    per_request: int
    in_flight: int  # the server's images being loaded, decoded and preprocessed
    per_server: int  # in_flight plus the outputs that requests still loading other images hold


def image_memory_bound(args: ServerArgs, geometry: ImageGeometry) -> ImageMemoryBound:
    max_resized = _max_resized_pixels(args, geometry)
    output = geometry.max_output_bytes or 3 * max_resized * 4
    per_image = (
        DECODE_BYTES_PER_PIXEL * args.max_image_pixels + RESIZE_BYTES_PER_PIXEL[geometry.kind] * max_resized + output
    )
    loading = args.max_media_bytes  # encoded bytes (a fetched body, a file, decoded base64) while in flight
    workers = args.media_workers
    request_loads = args.max_media_loads_per_request
    per_request = (
        request_loads * loading
        + min(request_loads, workers) * per_image
        + args.max_images_per_request * output  # finished images wait for the request's last one
    )
    held_images = min(
        args.max_queued_requests * args.max_images_per_request,
        args.max_queued_tokens // _min_image_tokens(geometry),  # each held image reserved its tokens
    )
    in_flight = args.max_concurrent_media_loads * loading + workers * per_image
    return ImageMemoryBound(per_image, per_request, in_flight, in_flight + held_images * output)


def _max_resized_pixels(args: ServerArgs, geometry: ImageGeometry) -> int:
    if geometry.kind == "qwen2_vl":
        return min(args.max_image_pixels, geometry.max_pixels)
    edge = geometry.shortest_edge or max(geometry.fixed_size or (1,))
    return min(args.max_image_pixels, edge * edge * MAX_ASPECT_RATIO)


def _min_image_tokens(geometry: ImageGeometry) -> int:
    if geometry.kind == "qwen2_vl":
        return max(1, geometry.min_pixels // (geometry.patch_size * geometry.merge_size) ** 2)
    return geometry.clip_tokens
