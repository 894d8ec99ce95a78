"""Turns an image string into encoded bytes, then a PIL image: data URIs, raw base64, http(s) URLs, local files.

Everything here runs in linear time on bounded input: the string's length is capped before anything else
looks at it, and no regular expression can backtrack. `classify_source` is cheap and runs on the event loop;
`load_inline` (base64, data URIs, file reads) and the image functions run in worker threads.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

from PIL import Image

from server.inputs.media_errors import MediaError
from server.inputs.media_fetch import FetchPolicy, ImageURL, parse_image_url
from server.inputs.media_local import MAX_PATH_CHARS, LocalMediaRoot, read_local_image

# Formats PIL may decode here; anything else (e.g. PDF, EPS, which run external tools) is refused.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+.-")


@dataclass(frozen=True)
class MediaLimits:
    fetch: FetchPolicy
    max_media_bytes: int  # encoded size: a URL's body, a file, a decoded base64 payload
    max_image_pixels: int  # width x height of the decoded image, and of the processor's resized image
    local_root: LocalMediaRoot | None  # local paths are refused when None

    @property
    def max_source_chars(self) -> int:
        return max_source_chars(self.max_media_bytes)


def max_source_chars(max_media_bytes: int) -> int:
    """The longest image string worth reading: `max_media_bytes` in base64 with a line break every 76 characters
    (MIME style), plus room for a data URI's header and surrounding whitespace."""
    encoded = 4 * ((max_media_bytes + 2) // 3)
    return encoded + 2 * (encoded // 76 + 1) + 1024


@dataclass(frozen=True)
class ImageSource:
    """Where an image comes from: a parsed http(s) URL, or text (data URI, base64, local path) read in a worker."""

    url: ImageURL | None
    inline: str | None


def classify_source(source: str, limits: MediaLimits) -> ImageSource:
    """Which kind of source a string is, decided by its form: `data:` URI, `http(s)://` URL, `file://` or anything
    with a dot or backslash (base64 has neither) is a path, the rest must be raw base64 (or, failing that,
    an absolute path)."""
    if len(source) > limits.max_source_chars:
        raise MediaError(
            f"image string has {len(source)} characters, more than the {limits.max_source_chars} that "
            f"--max-media-bytes ({limits.max_media_bytes}) allows"
        )
    stripped = source.strip()
    head = stripped[:40].lower()
    if head.startswith(("http://", "https://")):
        return ImageSource(parse_image_url(stripped), None)
    scheme, separator, _ = head.partition("://")
    if separator and scheme != "file" and scheme[:1].isalpha() and _SCHEME_CHARS.issuperset(scheme):
        raise MediaError("unsupported URL scheme; use http(s), a data URI, base64 or a local path")
    return ImageSource(None, stripped)


def load_inline(text: str, limits: MediaLimits) -> bytes:
    """The encoded image in a data URI, base64 text or a local file. Blocking: run it in a worker thread."""
    if text[:5].lower() == "data:":
        return _decode_data_uri(text, limits.max_media_bytes)
    if text[:7].lower() == "file://" or "." in text or "\\" in text:
        return read_local_image(text, limits.local_root, limits.max_media_bytes)
    compact = "".join(text.split())  # base64 may be wrapped in lines
    if not _BASE64_ALPHABET.issuperset(compact):
        return read_local_image(text, limits.local_root, limits.max_media_bytes)
    try:
        return _decode_base64(compact, limits.max_media_bytes)
    except MediaError:
        if text.startswith("/") and len(text) <= MAX_PATH_CHARS:  # a path without a dot: /data/images/cat
            return read_local_image(text, limits.local_root, limits.max_media_bytes)
        raise


def _decode_base64(compact: str, max_media_bytes: int) -> bytes:
    if len(compact) * 3 // 4 > max_media_bytes + 3:
        raise MediaError(f"base64 image is larger than the limit of {max_media_bytes} bytes (--max-media-bytes)")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("image is neither a URL, a data URI, a local path, nor valid base64") from None


def _decode_data_uri(uri: str, max_media_bytes: int) -> bytes:
    header, comma, data = uri.partition(",")
    mime, *params = header[5:].split(";")
    if not comma or "base64" not in (p.strip().lower() for p in params):
        raise MediaError("data URI must have the form data:image/<type>;base64,<data>")
    mime = mime.strip().lower()
    if mime and not mime.startswith("image/"):
        raise MediaError(f"data URI has media type {mime[:40]!r}, not an image")
    return _decode_base64("".join(data.split()), max_media_bytes)


def open_image(data: bytes, max_image_pixels: int) -> Image.Image:
    """Encoded bytes -> a PIL image whose header only has been read; over `max_image_pixels` is refused here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(f"image has more than the limit of {max_image_pixels} pixels (--max-image-pixels)") from None
    except Exception:  # PIL raises a variety of errors for data it cannot identify
        raise MediaError(f"data is not a readable image (supported: {', '.join(IMAGE_FORMATS).lower()})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise MediaError("image has no pixels")
    if width * height > max_image_pixels:
        raise MediaError(
            f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_image_pixels} "
            "(--max-image-pixels)"
        )
    return image


def load_pixels(image: Image.Image) -> Image.Image:
    """Decodes the pixels of an image from `open_image`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except Exception:  # truncated or corrupt pixel data
        raise MediaError("image data is truncated or corrupt") from None
    return image
