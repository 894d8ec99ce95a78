"""GME's prompts per --chat-template and --mm-processor-kwargs at startup: the real MultimodalProcessor in process,
its token ids against transformers' Qwen2VLProcessor on prompts written here (images as base64: nothing is fetched)."""

from __future__ import annotations

import asyncio
import base64
import functools
import json

import numpy as np
import pytest
from PIL import Image

from engine.model_config import ModelConfig
from server.http.protocol import MultimodalItem
from server.inputs.multimodal import MultimodalProcessor
from server.inputs.tokenizer_manager import TokenizerManager
from server.launch.args import ServerArgs, default_model_path
from server.launch.engine_processes import EngineProcesses, LaunchError
from tests.support.multimodal_models import (
    build_tiny_clip,
    build_tiny_qwen2_vl,
    gme_authors_prompt,
    photo_paths,
    qwen2_vl_reference_processor,
)

CAT_PATH = photo_paths()["cat"]
CAT = base64.b64encode(CAT_PATH.read_bytes()).decode()
ITEMS = [{"text": "a cat on a sofa"}, {"image": CAT_PATH}, {"text": "what is this?", "image": CAT_PATH}]


@pytest.fixture(scope="module")
def gme_path(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("models") / "gme-tiny")


@functools.cache  # each server configuration and reference processor is built once for the module's tests
def _token_ids(path: str, template: str, bounds: str = "{}") -> list[list[int]]:
    args = ServerArgs(model_path=path, chat_template=template, mm_processor_kwargs=bounds)
    config = ModelConfig.load(path)
    processor = MultimodalProcessor(config, args, TokenizerManager(config, False, False))
    try:
        items = [MultimodalItem(item.get("text"), CAT if "image" in item else None) for item in ITEMS]
        tokens, _ = asyncio.run(processor.prepare(items))
    finally:
        processor.pool.shutdown()
    bounds_at = np.cumsum(tokens.seq_lens)[:-1]
    return [ids.tolist() for ids in np.split(tokens.token_ids, bounds_at)]


@functools.cache
def _reference_processor(path: str, bounds: str):
    return qwen2_vl_reference_processor(path, json.loads(bounds))


def _reference_ids(path: str, missing_text: str, bounds: str = "{}") -> list[list[int]]:
    processor = _reference_processor(path, bounds)
    ids = []
    for item in ITEMS:
        images = [Image.open(item["image"])] if "image" in item else None
        ids.append(processor(text=[gme_authors_prompt(item, missing_text)], images=images)["input_ids"][0])
    return [list(map(int, row)) for row in ids]


def test_gme_template_is_the_authors_prompt_and_the_sglang_one_adds_padding(gme_path):
    authors = _token_ids(gme_path, "gme-qwen2-vl")
    assert authors == _reference_ids(gme_path, missing_text="")
    sglang = _token_ids(gme_path, "gme-qwen2-vl-sglang")
    assert sglang == _reference_ids(gme_path, missing_text="padding")
    assert sglang[0] == authors[0] and sglang[2] == authors[2]  # only the item without text differs
    assert len(sglang[1]) > len(authors[1])


def test_mm_processor_kwargs_replace_the_folders_pixel_budget(gme_path):
    bounds = json.dumps({"min_pixels": 128 * 28 * 28, "max_pixels": 160 * 28 * 28})
    ids = _token_ids(gme_path, "gme-qwen2-vl", bounds)
    assert ids == _reference_ids(gme_path, "", bounds)
    assert len(ids[1]) > len(_token_ids(gme_path, "gme-qwen2-vl")[1]) + 64  # the folder allows 64 merged patches


def test_mm_processor_kwargs_on_a_model_without_qwen2_vl_images_stop_the_start(tmp_path):
    bounds = '{"max_pixels": 1003520}'
    clip = build_tiny_clip(tmp_path / "clip")
    config = ModelConfig.load(clip)
    with pytest.raises(ValueError, match="--mm-processor-kwargs sets Qwen2-VL's pixel budget; CLIPModel takes none"):
        MultimodalProcessor(
            config, ServerArgs(model_path=clip, mm_processor_kwargs=bounds), TokenizerManager(config, False, False)
        )
    text_model = default_model_path()
    args = ServerArgs(model_path=text_model, mm_processor_kwargs=bounds)
    with pytest.raises(LaunchError, match="--mm-processor-kwargs is for models that take images"):
        EngineProcesses.start(args, ModelConfig.load(text_model), scheduler=None)  # type: ignore[arg-type]
