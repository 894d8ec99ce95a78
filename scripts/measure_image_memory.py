"""Peak memory of decoding and preprocessing one image, per pixel: checks the coefficients in server/inputs/media_memory.py.

Run each case in a fresh process (the peak is the process's VmHWM, reset before the image is decoded):
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_image_memory.py clip 2000 2000 RGBA
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_image_memory.py clip 14000 70 RGB     # 200:1, resized 22.6 MP
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_image_memory.py qwen2_vl 2000 2000 RGBA
"""

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.inputs.image_geometry import ImageGeometry  # noqa: E402
from server.inputs.media_memory import DECODE_BYTES_PER_PIXEL, RESIZE_BYTES_PER_PIXEL  # noqa: E402


def status(field: str) -> int:
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))


def main() -> None:
    kind, width, height, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if kind == "clip":  # ViT-L/14-336's settings
        processor = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    else:  # a pixel budget that admits the image at full size
        processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=width * height)
    plan = ImageGeometry(kind, processor, clip_tokens=(336 // 14) ** 2 + 1).plan(width, height)
    noise = np.random.default_rng(0).integers(0, 255, (height, width, len(mode)), dtype=np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(noise, mode).save(encoded, "PNG", compress_level=1)
    del noise
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    before = status("VmRSS:")
    image = Image.open(io.BytesIO(encoded.getvalue()))
    image.load()
    processor(images=[image], return_tensors="np")
    growth = status("VmHWM:") - before
    bound = DECODE_BYTES_PER_PIXEL * width * height + RESIZE_BYTES_PER_PIXEL[kind] * plan.resized_pixels
    print(
        f"{kind} {width}x{height} {mode}: peak growth {growth / 1e6:.0f} MB = {growth / (width * height):.1f} B per "
        f"decoded pixel, resized to {plan.resized_pixels / 1e6:.1f} MP; the bound's decode+resize terms: "
        f"{bound / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
