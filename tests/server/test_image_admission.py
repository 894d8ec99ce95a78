"""Image tokens in the request's reservation: the real MultimodalProcessor of a tiny GME with the real admission
ticket, in process (images as base64: nothing is fetched)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from engine.model_config import ModelConfig
from server.http.admission import Admission
from server.http.errors import APIError
from server.http.protocol import MultimodalItem
from server.inputs.multimodal import MultimodalProcessor
from server.inputs.tokenizer_manager import TokenizerManager
from server.launch.args import ServerArgs
from tests.support.multimodal_models import build_tiny_qwen2_vl, photo_paths
from tests.support.synthetic_images import gradient_png

CAT = base64.b64encode(photo_paths()["cat"].read_bytes()).decode()


@pytest.fixture(scope="module")
def gme(tmp_path_factory):
    path = build_tiny_qwen2_vl(tmp_path_factory.mktemp("models") / "gme-tiny")
    args = ServerArgs(model_path=path, chat_template="gme-qwen2-vl")
    config = ModelConfig.load(path)
    processor = MultimodalProcessor(config, args, TokenizerManager(config, False, False))
    yield processor
    processor.pool.shutdown()


def prepare(processor, items, max_tokens: int):
    """Runs prepare() under a real ticket; returns its result and every total the ticket was asked for."""
    totals: list[int] = []

    async def run():
        with Admission(8, max_tokens).admit() as ticket:

            def reserve(total: int) -> None:
                totals.append(total)
                ticket.reserve(total)

            return await processor.prepare(items, reserve)

    return asyncio.run(run()), totals


def test_gme_image_tokens_are_reserved_once_the_header_is_read(gme):
    items = [MultimodalItem("a cat", None), MultimodalItem(None, CAT), MultimodalItem("and again", CAT)]
    (tokens, images), totals = prepare(gme, items, 100_000)
    assert len(images) == 2 and len(totals) == 3
    image_tokens = [int(t * h * w) // 4 for t, h, w in (image.grid_thw for image in images)]
    assert totals[0] == tokens.num_tokens - sum(image_tokens) + 2  # texts, one placeholder per image
    assert totals[-1] == tokens.num_tokens  # every image's merged patches, before the pixels were decoded


def test_gme_images_past_the_budget_are_a_413_naming_the_tokens(gme):
    items = [MultimodalItem("a cat", None), MultimodalItem(None, CAT)]
    (tokens, _), _ = prepare(gme, items, 100_000)
    with pytest.raises(APIError) as refused:
        prepare(gme, items, tokens.num_tokens - 1)
    assert refused.value.status == 413 and f"needs {tokens.num_tokens} tokens" in refused.value.message


def test_gme_refuses_thin_images_before_preprocessing(gme):
    thin = base64.b64encode(gradient_png(1, 300)).decode()
    with pytest.raises(APIError) as refused:
        prepare(gme, [MultimodalItem(None, thin)], 100_000)
    assert refused.value.status == 400 and "aspect ratio beyond 200:1" in refused.value.message
