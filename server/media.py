"""Loads the images of multimodal requests safely: data URIs, raw base64, http(s) URLs and allowed local files.

Every failure is a MediaError whose message says what was wrong; the caller names the item and answers 400.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

# Formats PIL may decode here; anything else (e.g. PDF, EPS, which run external tools) is refused.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),(?P<data>.*)$", re.DOTALL)
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_MAX_REDIRECTS = 5


class MediaError(ValueError):
    """An image could not be loaded; the message says why, for the client."""


@dataclass(frozen=True)
class MediaLimits:
    fetch_timeout: float  # seconds for a whole URL fetch, headers and body
    max_bytes: int  # encoded size: a URL's body, a file, a decoded base64 payload
    max_pixels: int  # width x height of the decoded image
    allowed_local_dir: Path | None  # local paths are refused when None


async def load_image_bytes(source: str, limits: MediaLimits) -> bytes:
    """The encoded image a request refers to. Which kind of source is decided by its form:
    `data:` URI, `http(s)://` URL, `file://` or anything with a dot or backslash (base64 has neither) is a path,
    and the rest must be raw base64."""
    source = source.strip()
    if source.startswith("data:"):
        return _decode_data_uri(source, limits)
    lowered = source[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return await _fetch_url(source, limits)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source) and not lowered.startswith("file://"):
        raise MediaError(f"unsupported URL scheme in {source[:40]!r}; use http(s), a data URI, base64 or a local path")
    if lowered.startswith("file://") or "." in source or "\\" in source or not _BASE64.match(source):
        return _read_local_file(source.removeprefix("file://"), limits)
    return _decode_base64(source, limits)


def _decode_base64(data: str, limits: MediaLimits) -> bytes:
    if len(data) * 3 // 4 > limits.max_bytes + 3:
        raise MediaError(f"base64 image is larger than the limit of {limits.max_bytes} bytes")
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("image is neither a URL, a data URI, a local path, nor valid base64") from None


def _decode_data_uri(uri: str, limits: MediaLimits) -> bytes:
    match = _DATA_URI.match(uri)
    if match is None or ";base64" not in match.group("params"):
        raise MediaError("data URI must have the form data:image/<type>;base64,<data>")
    mime = match.group("mime") or ""
    if mime and not mime.startswith("image/"):
        raise MediaError(f"data URI has media type {mime!r}, not an image")
    return _decode_base64(match.group("data"), limits)


async def _fetch_url(url: str, limits: MediaLimits) -> bytes:
    try:
        return await asyncio.wait_for(_download(url, limits.max_bytes), timeout=limits.fetch_timeout)
    except (asyncio.TimeoutError, httpx.TimeoutException):
        raise MediaError(f"fetching {url} took longer than {limits.fetch_timeout:g}s") from None
    except httpx.TooManyRedirects:
        raise MediaError(f"fetching {url} was redirected more than {_MAX_REDIRECTS} times") from None
    except httpx.HTTPError as error:
        raise MediaError(f"fetching {url} failed: {type(error).__name__}: {error}") from None


async def _download(url: str, max_bytes: int) -> bytes:
    async with (
        httpx.AsyncClient(follow_redirects=True, max_redirects=_MAX_REDIRECTS) as client,
        client.stream("GET", url) as response,
    ):
        if response.status_code != 200:
            raise MediaError(f"fetching {url} returned HTTP {response.status_code}")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise MediaError(f"{url} is {declared} bytes, more than the limit of {max_bytes}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:  # a missing or lying content-length stops here
                raise MediaError(f"{url} is larger than the limit of {max_bytes} bytes")
        return bytes(body)


def _read_local_file(path: str, limits: MediaLimits) -> bytes:
    root = limits.allowed_local_dir
    if root is None:
        raise MediaError("local image paths are disabled; start the server with --allowed-local-media-path DIR")
    candidate = Path(path)
    # resolve() follows every symlink and '..', so the check below sees where the file really is
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise MediaError(f"local path {path!r} is outside the allowed media directory")
    if not resolved.is_file():
        raise MediaError(f"local path {path!r} is not a file")
    size = resolved.stat().st_size
    if size > limits.max_bytes:
        raise MediaError(f"local file {path!r} is {size} bytes, more than the limit of {limits.max_bytes}")
    return resolved.read_bytes()


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Encoded bytes -> a fully decoded PIL image; the size is checked from the header before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(f"image has more than the limit of {max_pixels} pixels") from None
    except Exception:  # PIL raises a variety of errors for data it cannot identify
        raise MediaError(f"data is not a readable image (supported: {', '.join(IMAGE_FORMATS).lower()})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise MediaError(f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}")
    try:
        image.load()
    except Exception as error:  # truncated or corrupt pixel data
        raise MediaError(f"image data is truncated or corrupt ({error})") from None
    return image
