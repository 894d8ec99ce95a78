"""Where image URLs may lead: the address policy as a function on literal addresses (public ones are only
judged, never connected to), and end to end with loopback spellings against a server without
--allow-private-media-urls, whose fetches must never reach the loopback evil server."""

from __future__ import annotations

import ipaddress

import pytest

from server.inputs.address_policy import non_public_reason
from tests.support.evil_http_server import EvilServer
from tests.support.launch import RunningServer
from tests.support.media_probe import assert_error_envelope, probe
from tests.support.multimodal_models import build_tiny_clip, photo_paths

NON_PUBLIC = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "::1": "loopback",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "fd00::1": "private",
    "fec0::1": "private",
    "169.254.169.254": "link-local",  # cloud metadata
    "fe80::1": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "private",  # Python counts the reserved 240/4 among its private networks
    "255.255.255.255": "private",
    "198.18.0.1": "private",  # benchmarking
    "192.0.2.1": "private",  # documentation
    "2001:db8::1": "private",  # documentation
    "::ffff:127.0.0.1": "IPv4-mapped IPv6",
    "::ffff:8.8.8.8": "IPv4-mapped IPv6",  # a mapped address is refused whatever it maps
    "::127.0.0.1": "IPv4-mapped IPv6",  # IPv4-compatible
    "2002:7f00:1::1": "loopback (embedded in IPv6)",  # 6to4 around 127.0.0.1
    "2002:a00:1::1": "private (embedded in IPv6)",  # 6to4 around 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "loopback (embedded in IPv6)",  # Teredo, client 127.0.0.1
    "64:ff9b::a9fe:a9fe": "link-local (embedded in IPv6)",  # NAT64 of 169.254.169.254
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::1", "2002:808:808::1"]


@pytest.mark.parametrize("address, reason", NON_PUBLIC.items())
def test_non_public_addresses_are_refused(address, reason):
    assert non_public_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert non_public_reason(ipaddress.ip_address(address)) is None


CAT = photo_paths()["cat"].read_bytes()


@pytest.fixture(scope="module")
def evil():
    server = EvilServer({"/cat.png": ("image/png", CAT)})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """The default policy (no --allow-private-media-urls), and a token budget that three CLIP images exceed."""
    clip = build_tiny_clip(tmp_path_factory.mktemp("models") / "clip-tiny")
    server = RunningServer(
        ["--model-path", clip, "--is-embedding", "--max-queued-tokens", "1500", "--max-request-bytes", "1500"],
        startup_timeout=300.0,
    )
    yield server
    server.stop()


def loopback_spellings(port: int) -> list[str]:
    hosts = ["127.0.0.1", "localhost", "127.1", "0x7f000001", "2130706433", "0177.0.0.1", "[::1]",
             "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "LOCALHOST.", "127.0.0.1."]  # fmt: skip
    return [f"http://{host}:{port}/cat.png" for host in hosts]


def test_loopback_spellings_are_refused_without_a_connection(strict_server, evil):
    before = evil.connections
    for url in loopback_spellings(evil.port):
        result = probe(strict_server, {"input": [{"image": url}]})
        message = assert_error_envelope(result.response)["message"]
        assert result.response.status_code == 400, (url, message)
        assert message == (
            "input[0].image: the URL could not be used: its host resolves to a non-public address "
            "(see --allow-private-media-urls)"
        ), (url, message)
    assert evil.connections == before, "the server connected to a refused address"


def test_clip_image_tokens_are_reserved_before_fetching(strict_server, evil):
    """Three CLIP images cost 3 x 577 tokens, more than --max-queued-tokens 1500: a 413 before any fetch."""
    before = evil.connections
    body = {"input": [{"image": f"http://127.0.0.1:{evil.port}/cat.png"}] * 3}
    error = assert_error_envelope(probe(strict_server, body).response)
    assert error["code"] == 413 and "1731 tokens" in error["message"], error
    assert evil.connections == before
