"""Our Qwen2-VL (GME) and CLIP against transformers on tiny random-weight models and real photos, float32."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.inputs import ImageInput
from engine.model_config import ModelConfig
from engine.model_runner import ModelRunner
from tests.support.compare import assert_close_vectors
from tests.support.multimodal_models import (
    build_tiny_clip,
    build_tiny_qwen2_vl,
    clip_reference,
    gme_authors_prompt,
    gme_reference,
    photo_paths,
    qwen2_vl_reference_processor,
)


def _normalized(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _gme_items() -> list[dict]:
    photos = photo_paths()
    return [
        {"text": "a cat sleeping on a sofa"},
        {"image": photos["cat"]},
        {"image": photos["astronaut"]},
        {"text": "what is in this picture?", "image": photos["rocket"]},
        {"text": "a portrait", "image": photos["hopper"]},
        {"text": "coffee"},
        {"image": photos["coffee"]},
    ]


def test_qwen2_vl_matches_transformers(tmp_path):
    path = build_tiny_qwen2_vl(tmp_path / "gme")
    items = _gme_items()
    processor = qwen2_vl_reference_processor(path)
    sequences, images = [], []
    for item in items:
        image = item.get("image")
        inputs = processor(
            text=[gme_authors_prompt(item)], images=[Image.open(image)] if image else None, return_tensors="np"
        )
        sequences.append(inputs["input_ids"][0].astype(np.int32))
        if image is None:
            images.append(None)
        else:
            grid = tuple(int(x) for x in inputs["image_grid_thw"][0])
            images.append(ImageInput(inputs["pixel_values"].astype(np.float32), grid))
    assert any(im is not None and im.grid_thw[1] != im.grid_thw[2] for im in images), "want a non-square image"
    runner = ModelRunner(ModelConfig.load(path))
    reference = gme_reference(path, items)
    together = _normalized(runner.embed(sequences, images))
    assert_close_vectors(together, reference)
    # batch invariance: one at a time gives the same vectors
    alone = _normalized(np.concatenate([runner.embed([s], [im]) for s, im in zip(sequences, images, strict=True)]))
    np.testing.assert_allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("legacy_eos", [False, True], ids=["eos-id", "legacy-argmax"])
def test_clip_matches_transformers(tmp_path, legacy_eos):
    from transformers import AutoImageProcessor, AutoTokenizer

    path = build_tiny_clip(tmp_path / "clip", legacy_eos)
    photos = photo_paths()
    items = [{"text": "a cat"}, {"image": photos["cat"]}, {"text": "an astronaut in a white suit"}]
    items += [{"image": photos["hopper"]}, {"image": photos["rocket"]}, {"text": "coffee"}]
    tokenizer, image_processor = AutoTokenizer.from_pretrained(path), AutoImageProcessor.from_pretrained(path)
    sequences, images = [], []
    for item in items:
        if "text" in item:
            sequences.append(np.asarray(tokenizer(item["text"])["input_ids"], dtype=np.int32))
            images.append(None)
        else:
            pixels = image_processor(images=[Image.open(item["image"])], return_tensors="np")["pixel_values"][0]
            sequences.append(np.zeros(0, dtype=np.int32))
            images.append(ImageInput(pixels.astype(np.float32), None, 577))
    runner = ModelRunner(ModelConfig.load(path))
    reference = clip_reference(path, items)
    mixed = _normalized(runner.embed(sequences, images))
    assert_close_vectors(mixed, reference, 0.9999)
    # texts alone take the text-only path; they must not change
    text_rows = [i for i, im in enumerate(images) if im is None]
    texts_only = _normalized(runner.embed([sequences[i] for i in text_rows]))
    np.testing.assert_allclose(texts_only, mixed[text_rows], atol=1e-5)
