"""embedserve.Engine on a multimodal model (a tiny CLIP): text and image items as the server takes them."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from embedserve import Engine
from tests.support.compare import assert_close_vectors
from tests.support.multimodal_models import build_tiny_clip, clip_reference, photo_paths

CAT = photo_paths()["cat"]


def test_clip_text_and_image_items_match_transformers(tmp_path):
    path = build_tiny_clip(tmp_path / "clip-tiny")
    cat_uri = "data:image/png;base64," + base64.b64encode(CAT.read_bytes()).decode()
    with Engine(path) as engine:
        vectors = engine.embed([{"text": "a photo of a cat"}, {"image": cat_uri}, "a plain string is a text item"])
        with pytest.raises(ValueError, match="not both"):
            engine.embed([{"text": "a cat", "image": cat_uri}])
    assert vectors.shape == (3, 24) and vectors.dtype == np.float32
    items = [{"text": "a photo of a cat"}, {"image": CAT}, {"text": "a plain string is a text item"}]
    assert_close_vectors(vectors, clip_reference(path, items), 0.9999)  # the server's own tolerance for CLIP
