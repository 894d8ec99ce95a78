"""Session fixtures: model folders and the sentence-transformers reference."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.support.decoder_models import build_tiny_variant  # noqa: E402
from tests.support.gemma_models import build_tiny_embeddinggemma  # noqa: E402
from tests.support.models import make_cls_copy, minilm_path  # noqa: E402
from tests.support.modernbert_models import build_modernbert_embedder  # noqa: E402
from tests.support.qwen3_embedding import build_tiny_qwen3_embedding  # noqa: E402
from tests.support.smollm2 import smollm2_path  # noqa: E402


def pytest_configure(config):
    """Under xdist two workers share the two cores: one torch thread each, so that their in-process forwards do
    not run four OpenMP threads that spin against each other. Servers started by tests keep their own threads."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


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


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory):
    """Tiny random-weight decoder folders by variant name (tests/support/decoder_models.py), built once each."""
    root = tmp_path_factory.mktemp("decoders")
    built: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = build_tiny_variant(name, root)
        return built[name]

    return get


@pytest.fixture(scope="session")
def tiny_qwen3_embedding(tmp_path_factory) -> str:
    return build_tiny_qwen3_embedding(tmp_path_factory.mktemp("models") / "tiny-qwen3-embedding")


@pytest.fixture(scope="session")
def smollm2() -> str:
    """Real SmolLM2-135M weights; the first run downloads and converts them (see tests/support/smollm2.py)."""
    return smollm2_path()


@pytest.fixture(scope="session")
def tiny_modernbert(tmp_path_factory) -> str:
    """A tiny ModernBertModel saved by sentence-transformers with mean pooling (tests/support/modernbert_models.py)."""
    return build_modernbert_embedder(tmp_path_factory.mktemp("models") / "tiny-modernbert", pooling="mean")


@pytest.fixture(scope="session")
def tiny_embeddinggemma(tmp_path_factory) -> str:
    """A bidirectional Gemma3TextModel with two Dense modules and EmbeddingGemma's prompts (tests/support/gemma_models.py)."""
    return build_tiny_embeddinggemma(tmp_path_factory.mktemp("models") / "tiny-embeddinggemma")
