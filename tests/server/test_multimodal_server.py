"""GME and CLIP served end to end: image sources, errors, mixed requests, and parity with transformers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.support.compare import assert_close_vectors, cosine_per_row
from tests.support.image_server import ImageServer
from tests.support.launch import RunningServer
from tests.support.multimodal_models import (
    GME_AUTHORS_IMAGE_BOUNDS,
    build_tiny_clip,
    build_tiny_qwen2_vl,
    clip_reference,
    gme_authors_prompt,
    gme_reference,
    media_folder,
    photo_paths,
    qwen2_vl_reference_processor,
)
from tests.support.synthetic_images import gradient_png

MAX_MEDIA_BYTES = 600_000  # above every photo used but astronaut.png (791 KB)
PHOTOS = photo_paths()
CAT_BYTES = PHOTOS["cat"].read_bytes()


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return media_folder(tmp_path_factory.mktemp("media"), CAT_BYTES)


@pytest.fixture(scope="module")
def image_server():
    files = {
        "/cat.png": CAT_BYTES,
        "/rocket.jpg": PHOTOS["rocket"].read_bytes(),
        "/notes.txt": b"these are not pixels\n" * 20,
        "/truncated.png": CAT_BYTES[: len(CAT_BYTES) // 2],
        "/big.png": PHOTOS["astronaut"].read_bytes(),
    }
    server = ImageServer(files, slow_seconds=4.0, huge_bytes=2 * MAX_MEDIA_BYTES)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gme_path(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("models") / "gme-Qwen2-VL-tiny")


@pytest.fixture(scope="module")
def gme_server(gme_path, media_dir):
    server = RunningServer(
        ["--model-path", gme_path, "--is-embedding", "--chat-template", "gme-qwen2-vl",
         "--allowed-local-media-path", str(media_dir / "allowed"), "--media-fetch-timeout", "1.5",
         "--max-media-bytes", str(MAX_MEDIA_BYTES), "--allow-private-media-urls",
         "--mm-processor-kwargs", json.dumps(GME_AUTHORS_IMAGE_BOUNDS)]
    )  # fmt: skip
    yield server
    server.stop()


def _post(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/embeddings", json={"model": "m", **body}, timeout=60)


def _vectors(payload: dict) -> np.ndarray:
    return np.array([d["embedding"] for d in payload["data"]], dtype=np.float32)


def _prompt_tokens(gme_path: str, items: list[dict]) -> int:
    """The items' tokens as the reference processor counts them: the authors' prompt and image bounds."""
    from PIL import Image

    processor = qwen2_vl_reference_processor(gme_path, GME_AUTHORS_IMAGE_BOUNDS)
    counts = []
    for item in items:
        images = [Image.open(item["image"])] if item.get("image") is not None else None
        counts.append(len(processor(text=[gme_authors_prompt(item)], images=images)["input_ids"][0]))
    return sum(counts)


def test_gme_text_and_image_items_match_the_authors_recipe(gme_server, gme_path, image_server):
    client = OpenAI(base_url=f"{gme_server.base_url}/v1", api_key="x")
    text = "Represent this image in embedding space."
    response = client.embeddings.create(
        model="gme",
        input=[{"text": text}, {"image": f"{image_server.base_url}/cat.png"}],  # type: ignore[list-item]
    )
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    items = [{"text": text}, {"image": PHOTOS["cat"]}]
    assert_close_vectors(got, gme_reference(gme_path, items, GME_AUTHORS_IMAGE_BOUNDS))
    # usage counts the prompt with its expanded image tokens, as the reference processor builds it
    assert response.usage.prompt_tokens == _prompt_tokens(gme_path, items)
    # the fixture is context-sensitive: SGLang's `padding` text in the image-only prompt moves the vector visibly
    sglang = gme_reference(gme_path, items[1:], GME_AUTHORS_IMAGE_BOUNDS, missing_text="padding")
    assert cosine_per_row(got[1:], sglang)[0] < 0.9999
    assert cosine_per_row(got[:1], got[1:])[0] < 0.9


def test_gme_fused_item_and_raw_json(gme_server, gme_path, image_server):
    item = {"text": "what is this?", "image": f"{image_server.base_url}/rocket.jpg"}
    response = _post(gme_server, {"input": [item], "encoding_format": "float"})
    assert response.status_code == 200, response.text
    reference = gme_reference(
        gme_path, [{"text": "what is this?", "image": PHOTOS["rocket"]}], GME_AUTHORS_IMAGE_BOUNDS
    )
    assert_close_vectors(_vectors(response.json()), reference)


def test_gme_images_are_bounded_by_the_flag_not_the_folder(gme_server, gme_path, tmp_path):
    # the folder allows 64 merged patches; the authors' bounds lift the cat to 256 and cap a large image at 1,280
    large = tmp_path / "large.png"
    large.write_bytes(gradient_png(1600, 1200))
    items = [{"image": PHOTOS["cat"]}, {"text": "a gradient", "image": large}]
    encoded = [base64.b64encode(Path(item["image"]).read_bytes()).decode() for item in items]
    body = [{"image": encoded[0]}, {"text": "a gradient", "image": encoded[1]}]
    response = _post(gme_server, {"input": body, "encoding_format": "float"})
    assert response.status_code == 200, response.text
    assert_close_vectors(_vectors(response.json()), gme_reference(gme_path, items, GME_AUTHORS_IMAGE_BOUNDS))
    assert response.json()["usage"]["prompt_tokens"] == _prompt_tokens(gme_path, items)
    from PIL import Image

    processor = qwen2_vl_reference_processor(gme_path, GME_AUTHORS_IMAGE_BOUNDS).image_processor
    grids = [processor(images=[Image.open(item["image"])])["image_grid_thw"][0] for item in items]
    merged = [int(np.prod(grid)) // 4 for grid in grids]
    assert merged[0] >= 256 and 1200 < merged[1] <= 1280, merged


def test_mixed_request_equals_items_one_by_one(gme_server, image_server):
    items = [
        {"text": "a cat"},
        {"image": f"{image_server.base_url}/cat.png"},
        {"text": "a rocket", "image": f"{image_server.base_url}/rocket.jpg"},
        {"text": "a dog"},
    ]
    together = _post(gme_server, {"input": items, "encoding_format": "float"})
    assert together.status_code == 200, together.text
    alone = [_vectors(_post(gme_server, {"input": [item], "encoding_format": "float"}).json())[0] for item in items]
    np.testing.assert_allclose(_vectors(together.json()), np.stack(alone), atol=1e-5)


def test_every_image_source_gives_the_same_vector(gme_server, image_server, media_dir):
    encoded = base64.b64encode(CAT_BYTES).decode()
    sources = [
        f"{image_server.base_url}/cat.png",
        f"data:image/png;base64,{encoded}",
        encoded,
        str(media_dir / "allowed" / "cat.png"),
        "cat.png",  # relative to the allowed directory
        f"file://{media_dir / 'allowed' / 'cat.png'}",
    ]
    response = _post(gme_server, {"input": [{"image": s} for s in sources], "encoding_format": "float"})
    assert response.status_code == 200, response.text
    vectors = _vectors(response.json())
    for row in vectors[1:]:
        np.testing.assert_allclose(row, vectors[0], atol=1e-6)


def _bad_sources(base_url: str, media_dir) -> dict[str, tuple[str, str]]:
    allowed = media_dir / "allowed"
    return {
        "outside the allowed directory": (str(media_dir / "secret.png"), "outside the allowed media directory"),
        "dot-dot escape": (str(allowed / ".." / "secret.png"), "outside the allowed media directory"),
        "symlink escape": (str(allowed / "escape.png"), "outside the allowed media directory"),
        "missing file": (str(allowed / "nothing.png"), "not a file"),
        "url that times out": (f"{base_url}/slow", "took longer than 1.5s"),
        "body over the limit": (f"{base_url}/big.png", f"larger than the limit of {MAX_MEDIA_BYTES}"),
        "stream over the limit": (f"{base_url}/huge", f"larger than the limit of {MAX_MEDIA_BYTES}"),
        "not an image": (f"{base_url}/notes.txt", "not a readable image"),
        "truncated image": (f"{base_url}/truncated.png", "truncated or corrupt"),
        "http error": (f"{base_url}/missing.png", "no image could be fetched from it"),
        "bad base64": ("QUJDR", "nor valid base64"),
        "base64 of text": (base64.b64encode(b"hello there, not pixels").decode(), "not a readable image"),
        "data uri of text": ("data:text/plain;base64,aGVsbG8=", "not an image"),
        "unsupported scheme": ("ftp://example.com/cat.png", "unsupported URL scheme"),
    }


def test_bad_images_are_400s_naming_the_item_and_the_server_stays_healthy(gme_server, image_server, media_dir):
    for name, (source, fragment) in _bad_sources(image_server.base_url, media_dir).items():
        body = {"input": [{"text": "fine"}, {"image": source}]}
        response = _post(gme_server, body)
        assert response.status_code == 400, (name, response.text)
        message = response.json()["error"]["message"]
        assert "input[1].image" in message and fragment in message, (name, message)
    assert httpx.get(f"{gme_server.base_url}/health").status_code == 200
    ok = _post(gme_server, {"input": [{"image": f"{image_server.base_url}/cat.png"}]})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "item, fragment",
    [
        ({}, "needs a 'text' or an 'image'"),
        ({"img": "x"}, "unknown field"),
        ({"text": 5}, "must be a string"),
        ({"text": "  "}, "empty"),
        ({"text": "sneaky <|image_pad|> token"}, "must not contain"),
    ],
)
def test_malformed_items_are_400(gme_server, item, fragment):
    response = _post(gme_server, {"input": ["plain text is fine", item]})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_decompression_bomb_is_refused(gme_server, tmp_path):
    from PIL import Image

    image = Image.new("L", (8000, 6000))  # 48 MP of zeros: a few KB of PNG
    path = tmp_path / "bomb.png"
    image.save(path, optimize=True)
    encoded = base64.b64encode(path.read_bytes()).decode()
    response = _post(gme_server, {"input": [{"image": encoded}]})
    assert response.status_code == 400 and "pixels" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "clip-tiny")


@pytest.fixture(scope="module")
def clip_server(clip_path):
    server = RunningServer(["--model-path", clip_path, "--is-embedding", "--allow-private-media-urls"])
    yield server
    server.stop()


def test_clip_text_and_image_pair_matches_reference(clip_server, clip_path, image_server):
    client = OpenAI(base_url=f"{clip_server.base_url}/v1", api_key="x")
    items = [{"text": "a photo of a cat"}, {"image": f"{image_server.base_url}/cat.png"}]
    response = client.embeddings.create(model="clip", input=items)  # type: ignore[arg-type]
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    reference = clip_reference(clip_path, [{"text": "a photo of a cat"}, {"image": PHOTOS["cat"]}])
    assert_close_vectors(got, reference, 0.9999)
    assert got.shape == (2, 24)
    from transformers import AutoTokenizer

    num_text_tokens = len(AutoTokenizer.from_pretrained(clip_path)("a photo of a cat")["input_ids"])
    assert response.usage.prompt_tokens == num_text_tokens + 577  # 24 x 24 patches + CLS
    plain = client.embeddings.create(model="clip", input="a photo of a cat")  # plain strings are text items
    np.testing.assert_allclose(plain.data[0].embedding, got[0], atol=1e-6)


def test_clip_refuses_fused_items_and_local_paths_without_the_flag(clip_server, image_server, media_dir):
    both = _post(clip_server, {"input": [{"text": "a cat", "image": f"{image_server.base_url}/cat.png"}]})
    assert both.status_code == 400 and "not both" in both.json()["error"]["message"]
    local = _post(clip_server, {"input": [{"image": str(media_dir / "allowed" / "cat.png")}]})
    assert local.status_code == 400 and "--allowed-local-media-path" in local.json()["error"]["message"]
    assert httpx.get(f"{clip_server.base_url}/health").status_code == 200
