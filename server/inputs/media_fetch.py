"""Fetches image URLs under the server's policy: checked destinations, pinned addresses, bounded bodies.

Each hop's host is resolved here and checked (address policy, --allowed-media-domains); the connection then
goes to that very address, with the Host header and TLS SNI naming the host, so a second DNS answer cannot
swap it. Redirects are followed here, each hop checked the same way. Errors say why in terms of policy and
never what the far side answered (no status codes, no connect errors): the server must not be a port scanner.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import httpx

from server.inputs.address_policy import non_public_reason, parse_address
from server.inputs.media_errors import MediaError

MAX_REDIRECTS = 5
MAX_URL_CHARS = 8192
_REDIRECTS = (301, 302, 303, 307, 308)
# Declared types that can hold an image; servers that send none are given the benefit of the doubt.
_IMAGE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
_UNUSABLE = "the URL could not be used"
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class FetchPolicy:
    media_fetch_timeout: float  # seconds for the whole fetch: DNS, every redirect, headers and body
    max_media_bytes: int
    allowed_media_hosts: frozenset[str] | None  # None: any host
    allow_private_media_urls: bool  # let URLs reach loopback, private and other non-public addresses


@dataclass(frozen=True)
class ImageURL:
    scheme: str
    host: str  # lower case, no brackets, no trailing dot
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_image_url(url: str) -> ImageURL:
    """A URL's parts, or a MediaError saying what is malformed; nothing is resolved or fetched."""
    if len(url) > MAX_URL_CHARS:
        raise MediaError(f"URL is longer than {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise MediaError("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:  # e.g. an unclosed [ or a port that is not a number
        raise MediaError("URL is malformed") from None
    if parts.scheme not in ("http", "https"):
        raise MediaError("URL scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise MediaError("URL must not contain credentials")
    if not host:
        raise MediaError("URL has no host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise MediaError("URL host is not a valid domain name") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return ImageURL(parts.scheme, host.rstrip(".").lower(), port or (443 if parts.scheme == "https" else 80), target)


async def fetch_image(client: httpx.AsyncClient, url: ImageURL, policy: FetchPolicy) -> bytes:
    """The body of `url` after at most MAX_REDIRECTS checked redirects, within the policy's time and bytes."""
    try:
        return await asyncio.wait_for(_follow(client, url, policy), timeout=policy.media_fetch_timeout)
    except asyncio.TimeoutError:
        raise MediaError(
            f"{_UNUSABLE}: fetching it took longer than {policy.media_fetch_timeout:g}s (--media-fetch-timeout)"
        ) from None


async def _follow(client: httpx.AsyncClient, url: ImageURL, policy: FetchPolicy) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        address = await checked_address(url, policy)
        try:
            response = await client.send(_request(url, address), stream=True)
        except httpx.HTTPError:
            raise MediaError(f"{_UNUSABLE}: no image could be fetched from it") from None
        try:
            location = response.headers.get("location") if response.status_code in _REDIRECTS else None
            if location is None:
                return await _read_body(response, policy.max_media_bytes)
        finally:
            await response.aclose()
        try:
            url = parse_image_url(urljoin(_display(url), location))
        except MediaError:
            raise MediaError(f"{_UNUSABLE}: it redirects to a malformed URL") from None
    raise MediaError(f"{_UNUSABLE}: it was redirected more than {MAX_REDIRECTS} times")


async def checked_address(url: ImageURL, policy: FetchPolicy) -> str:
    """The address to connect to for `url`'s host, after the domain and address checks."""
    if policy.allowed_media_hosts is not None and url.host not in policy.allowed_media_hosts:
        raise MediaError(f"{_UNUSABLE}: host {url.host!r} is not in --allowed-media-domains")
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(
            url.host, url.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError):
        raise MediaError(f"{_UNUSABLE}: its host does not resolve") from None
    addresses = [parse_address(str(answer[4][0])) for answer in answers]
    if not addresses or any(a is None for a in addresses):
        raise MediaError(f"{_UNUSABLE}: its host does not resolve")
    if not policy.allow_private_media_urls:
        # every answer must be public: a host that also resolves to an internal address is refused
        for address in addresses:
            if non_public_reason(address) is not None:  # type: ignore[arg-type]
                raise MediaError(
                    f"{_UNUSABLE}: its host resolves to a non-public address (see --allow-private-media-urls)"
                )
    return str(addresses[0])


def _request(url: ImageURL, address: str) -> httpx.Request:
    target = quote(url.target, safe=_PRINTABLE_ASCII)  # only non-ASCII characters get percent-encoded
    pinned = httpx.URL(scheme=url.scheme, host=address, port=url.port, raw_path=target.encode("ascii"))
    headers = {"Host": url.host_header, "Accept-Encoding": "identity", "Accept": "image/*", "User-Agent": "embedserve"}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return httpx.Request("GET", pinned, headers=headers, extensions=extensions)


async def _read_body(response: httpx.Response, max_media_bytes: int) -> bytes:
    if response.status_code != 200:
        raise MediaError(f"{_UNUSABLE}: no image could be fetched from it")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # we asked for identity; decoding would let a small body expand past the byte limit
        raise MediaError(f"{_UNUSABLE}: its body is compressed (Content-Encoding), which is refused")
    kind = response.headers.get("content-type", "").strip().lower()
    if kind and not kind.startswith(_IMAGE_TYPES):
        raise MediaError(f"{_UNUSABLE}: no image could be fetched from it")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_media_bytes:
        raise MediaError(
            f"{_UNUSABLE}: the image is larger than the limit of {max_media_bytes} bytes (--max-media-bytes)"
        )
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():  # raw: nothing is decompressed
            body += chunk
            if len(body) > max_media_bytes:  # a missing or lying content-length stops here
                raise MediaError(
                    f"{_UNUSABLE}: the image is larger than the limit of {max_media_bytes} bytes (--max-media-bytes)"
                )
    except httpx.HTTPError:
        raise MediaError(f"{_UNUSABLE}: no image could be fetched from it") from None
    return bytes(body)


def _display(url: ImageURL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{url.port}{url.target}"


def new_fetch_client(media_fetch_timeout: float) -> httpx.AsyncClient:
    """One client for all fetches: no proxies from the environment (they would bypass the pinned address),
    no redirects (followed above), no kept-alive connections (a TLS connection checked for one host name
    must not serve another host on the same address)."""
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(media_fetch_timeout),
        limits=httpx.Limits(max_keepalive_connections=0),
    )
