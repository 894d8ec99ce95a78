"""Hostile images through a real CLIP server: each is a 4xx in the envelope, /health keeps answering within a
second meanwhile, and the frontend's peak memory grows by less than the per-request bound docs/security.md states."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model_config import ModelConfig
from server.inputs.image_geometry import ImageGeometry
from server.inputs.media import max_source_chars
from server.inputs.media_memory import image_memory_bound
from server.launch.cli import parse_serve_args
from tests.support.evil_http_server import EvilServer
from tests.support.launch import RunningServer, free_port
from tests.support.media_probe import HEALTH_TIMEOUT, assert_error_envelope, probe
from tests.support.multimodal_models import build_tiny_clip, media_folder, photo_paths
from tests.support.synthetic_images import gradient_png

CAT = photo_paths()["cat"].read_bytes()
FLAGS = ["--max-media-bytes", "1000000", "--max-image-pixels", "4000000", "--media-fetch-timeout", "3",
         "--max-images-per-request", "8", "--allowed-media-domains", "127.0.0.1", "--allow-private-media-urls"]  # fmt: skip


STARTUP_TIMEOUT = 300.0  # imports alone can take minutes on a machine shared with other test runs


THIN = gradient_png(1, 4000)  # CLIP would resize it to 336 x 1,344,000


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "clip-tiny")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    root = media_folder(tmp_path_factory.mktemp("media"), CAT)
    allowed = root / "allowed"
    (allowed / "zero.png").symlink_to("/dev/zero")
    (allowed / "photos.d").mkdir()
    os.mkfifo(allowed / "pipe.fifo")
    return root


@pytest.fixture(scope="module")
def evil():
    server = EvilServer({"/cat.png": ("image/png", CAT), "/thin.png": ("image/png", THIN),
                         "/page.html": ("text/html", CAT)})  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(clip_path, media_dir):
    running = RunningServer(
        ["--model-path", clip_path, "--is-embedding", "--allowed-local-media-path", str(media_dir / "allowed"), *FLAGS],
        startup_timeout=STARTUP_TIMEOUT,
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bound(clip_path, media_dir):
    """The per-request bound for this server's flags, as docs/security.md computes it."""
    from transformers import AutoImageProcessor

    args = parse_serve_args(["--model-path", clip_path, *FLAGS])
    clip_tokens = ModelConfig.load(clip_path).vision.tokens_per_image
    geometry = ImageGeometry("clip", AutoImageProcessor.from_pretrained(clip_path), clip_tokens)
    return image_memory_bound(args, geometry).per_request


def hostile_cases(evil_url: str, allowed) -> dict[str, tuple[str, str]]:
    closed_port = free_port()
    return {
        "regex backtracking (ReDoS)": ("A" + " " * 80000 + "!", "longer than 4096"),
        "ReDoS in a data URI": ("data:image/png;base64,A" + " " * 80000 + "!", "nor valid base64"),
        "string longer than the cap": ("A" * (max_source_chars(1_000_000) + 1), "characters, more than"),
        "thin PNG in base64": (base64.b64encode(THIN).decode(), "aspect ratio beyond 200:1"),
        "thin PNG by URL": (f"{evil_url}/thin.png", "aspect ratio beyond 200:1"),
        "gzip bomb": (f"{evil_url}/gzip-bomb", "compressed"),
        "zstd bomb": (f"{evil_url}/zstd-bomb", "compressed"),
        "endless body": (f"{evil_url}/endless", "larger than the limit of 1000000 bytes"),
        "slow body": (f"{evil_url}/slow", "took longer than 3s"),
        "wrong content type": (f"{evil_url}/page.html", "no image could be fetched"),
        "not found": (f"{evil_url}/missing.png", "no image could be fetched"),
        "closed port": (f"http://127.0.0.1:{closed_port}/x.png", "no image could be fetched"),
        "six redirects": (f"{evil_url}/redirect?hops=5&to=/cat.png", "redirected more than 5 times"),
        "redirect to a host not allowed": (f"{evil_url}/redirect?to=http://localhost:1/x.png", "not in --allowed"),
        "unclosed IPv6 bracket": ("http://[::1", "URL is malformed"),
        "port out of range": ("http://127.0.0.1:99999/x.png", "URL is malformed"),
        "no host": ("http:///x.png", "URL has no host"),
        "credentials": ("http://user:pw@127.0.0.1/x.png", "credentials"),
        "space in URL": ("http://127.0.0.1/a b.png", "whitespace"),
        "unsupported scheme": ("gopher://127.0.0.1/x", "unsupported URL scheme"),
        "5,000-character path": ("/" + "a" * 5000 + ".png", "longer than 4096"),
        "256-character name": (str(allowed / ("a" * 300 + ".png")), "longer than 255"),
        "NUL in a path": ("cat\x00.png", "NUL"),
        "file URL with a host": ("file://server/share/x.png", "file:///absolute/path"),
        "file URL outside": ("file:///etc/passwd", "outside the allowed media directory"),
        "dot-dot": (str(allowed / ".." / "secret.png"), "outside the allowed media directory"),
        "symlink escaping": (str(allowed / "escape.png"), "outside the allowed media directory"),
        "symlink to /dev/zero": ("zero.png", "outside the allowed media directory"),
        "/dev/zero": ("/dev/zero", "outside the allowed media directory"),
        "FIFO": ("pipe.fifo", "not a regular file"),
        "directory": ("photos.d", "not a regular file"),
        "missing file": ("nothing.png", "not a file under the allowed media directory"),
    }


CASE_NAMES = list(hostile_cases("http://x", Path("/x")))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_image_is_a_4xx_and_the_server_stays_responsive(name, server, evil, media_dir, bound):
    image, fragment = hostile_cases(evil.base_url, media_dir / "allowed")[name]
    result = probe(server, {"model": "clip", "input": [{"text": "fine"}, {"image": image}]})
    error = assert_error_envelope(result.response)
    assert result.response.status_code == 400
    message = error["message"]
    assert message.startswith("input[1].image: ") and fragment in message, message
    assert str(media_dir) not in message and "Error" not in message and "Traceback" not in message
    assert result.peak_growth < bound, (result.peak_growth, bound)


def test_far_side_failures_read_the_same(server, evil):
    """A 404, a closed port and a non-image answer give one message: the server is no port scanner."""
    sources = [f"{evil.base_url}/missing.png", f"http://127.0.0.1:{free_port()}/x.png", f"{evil.base_url}/page.html"]
    messages = {probe(server, {"input": [{"image": s}]}).response.json()["error"]["message"] for s in sources}
    assert messages == {"input[0].image: the URL could not be used: no image could be fetched from it"}


def test_too_many_images_is_refused_before_any_fetch(server, evil):
    before = evil.connections
    response = probe(server, {"input": [{"image": f"{evil.base_url}/cat.png"}] * 9}).response
    assert assert_error_envelope(response)["message"].endswith("more than the limit of 8 (--max-images-per-request)")
    assert evil.connections == before


def test_redirects_within_the_policy_are_followed(server, evil):
    response = probe(server, {"input": [{"image": f"{evil.base_url}/redirect?hops=4&to=/cat.png"}]}).response
    assert response.status_code == 200, response.text


def test_largest_allowed_images_stay_under_the_memory_bound(server, bound):
    """Four images at once at the pixel limit (and CLIP's resize to the limit): the bound has teeth."""
    wide = base64.b64encode(gradient_png(11_200, 336)).decode()  # 3.76 MP, resized to itself: both stages at the limit
    result = probe(server, {"input": [{"image": wide}] * 4})
    assert result.response.status_code == 200, result.response.text
    assert result.peak_growth < bound, (result.peak_growth, bound)


def test_healthy_after_the_hostile_suite(server, evil):
    response = probe(server, {"input": [{"image": f"{evil.base_url}/cat.png"}, {"text": "a cat"}]}).response
    assert response.status_code == 200 and response.json()["usage"]["prompt_tokens"] > 577


FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
schemes = st.sampled_from(["http://", "https://", "HTTP://", "file://", "data:", "ftp://", "", " ", "//", "http:/"])
hosts = st.sampled_from(["127.0.0.1", "[::1", "[::1]", "localhost", "0x7f000001", "", "@", "[", "127.0.0.1:0",
                         "127.0.0.1:-1", "exa mple.com", "xn--", "ø.example", "127.0.0.1:99999999999"])  # fmt: skip


@st.composite
def image_strings(draw) -> str:
    kind = draw(st.sampled_from(["url", "evil path", "data", "base64", "image", "text"]))
    if kind == "url":  # hosts other than 127.0.0.1 are refused before any lookup (--allowed-media-domains)
        return draw(schemes) + draw(hosts) + draw(any_text)
    if kind == "evil path":  # only the loopback evil server is ever contacted
        return "EVIL" + draw(st.sampled_from(["/", "/redirect?to=", "/cat.png?", "/thin.png#"])) + draw(any_text)
    if kind == "data":
        mime = draw(st.sampled_from(["image/png", "text/plain", "", "image/png;charset=x", "IMAGE/PNG"]))
        params = draw(st.sampled_from([";base64", "", ";BASE64", ";base64;x", ";;"]))
        return f"data:{mime}{params}," + draw(any_text | st.binary(max_size=200).map(_b64))
    if kind == "base64":
        return _b64(draw(st.binary(max_size=300)))
    if kind == "image":  # real PNGs of any shape, thin ones included
        width, height = draw(st.integers(1, 3000)), draw(st.integers(1, 40))
        return _b64(gradient_png(width, height) if draw(st.booleans()) else gradient_png(height, width))
    return draw(any_text.filter(str.strip))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@FUZZ
@given(images=st.lists(image_strings(), min_size=1, max_size=3))
def test_fuzzed_image_strings_are_a_4xx_or_a_200(server, evil, images):
    items = [{"image": image.replace("EVIL", evil.base_url, 1)} for image in images]
    response = httpx.post(f"{server.base_url}/v1/embeddings", json={"input": items}, timeout=60)
    if response.status_code != 200:
        assert_error_envelope(response)
    assert httpx.get(f"{server.base_url}/health", timeout=HEALTH_TIMEOUT).status_code == 200
