"""Session fixtures: model folders and the sentence-transformers reference."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.support.models import make_cls_copy, minilm_path  # noqa: E402


@pytest.fixture(scope="session")
def minilm() -> str:
    return minilm_path()


@pytest.fixture(scope="session")
def bge_style_cls(tmp_path_factory) -> str:
    return make_cls_copy(tmp_path_factory.mktemp("models") / "bge-style-cls")


@pytest.fixture(scope="session")
def st_model_factory():
    """sentence-transformers models by path, loaded once each (the import alone costs seconds)."""
    from sentence_transformers import SentenceTransformer

    cache: dict[str, SentenceTransformer] = {}

    def get(path: str) -> SentenceTransformer:
        if path not in cache:
            cache[path] = SentenceTransformer(path, device="cpu")
        return cache[path]

    return get


def pytest_collection_modifyitems(config, items):
    """GPU-marked tests are skipped, visibly, where there is no CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
