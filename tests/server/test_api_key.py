"""Where the API key comes from (--api-key, --api-key-file, EMBEDSERVE_API_KEY), which wins, and that it is never shown."""

from __future__ import annotations

import httpx
import pytest

from server.launch.api_key import API_KEY_ENV
from server.launch.args import ServerArgs, ServerArgsError
from tests.support.launch import RunningServer

KEY = "file-key-7c4e2a91"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "api-key"
    path.write_text(f"{KEY}\n")  # as `echo KEY > file` and secret mounts write it
    path.chmod(0o600)
    return str(path)


def test_sources_and_precedence(key_file, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert ServerArgs().api_key is None
    assert ServerArgs(api_key_file=key_file).api_key == KEY
    monkeypatch.setenv(API_KEY_ENV, "from-the-environment")
    assert ServerArgs().api_key == "from-the-environment"
    assert ServerArgs(api_key="from-the-flag").api_key == "from-the-flag"  # an option wins over the environment
    assert ServerArgs(api_key_file=key_file).api_key == KEY


def test_two_options_conflict(key_file):
    with pytest.raises(ServerArgsError, match="give --api-key or --api-key-file, not both"):
        ServerArgs(api_key="x", api_key_file=key_file)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "non-empty"),
        (b"two words", "without spaces"),
        (b"\xff\xfesecret", "not ASCII"),
        (b"k" * 5000, "not a key"),
    ],
)
def test_unusable_key_files_are_refused_without_echoing_them(tmp_path, content, message):
    path = tmp_path / "api-key"
    path.write_bytes(content)
    with pytest.raises(ServerArgsError, match=message) as info:
        ServerArgs(api_key_file=str(path))
    for word in ("two", "words", "secret", "kkkk"):
        assert word not in str(info.value)


def test_unusable_keys_from_the_flag_or_environment_are_refused_without_echoing_them(tmp_path, monkeypatch):
    with pytest.raises(ServerArgsError, match="--api-key must be") as info:
        ServerArgs(api_key="secret with\ttab")
    assert "secret" not in str(info.value)
    monkeypatch.setenv(API_KEY_ENV, "")
    with pytest.raises(ServerArgsError, match=f"{API_KEY_ENV} must be non-empty"):
        ServerArgs()
    with pytest.raises(ServerArgsError, match="No such file"):
        ServerArgs(api_key_file=str(tmp_path / "missing"))


def test_server_with_a_key_file_requires_it_and_never_shows_it(minilm, key_file, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    server = RunningServer(["--model-path", minilm, "--api-key-file", key_file])
    try:
        url = f"{server.base_url}/tokenize"
        assert httpx.post(url, json={"prompt": "hi"}, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.post(url, json={"prompt": "hi"}).status_code == 401
        info = httpx.get(f"{server.base_url}/get_server_info", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert info["api_key"] == "<redacted>" and info["api_key_file"] == key_file
        command_lines = [" ".join(p.cmdline()) for p in server.children] + [" ".join(server.proc.args)]
        assert not any(KEY in line for line in command_lines)
    finally:
        server.stop()
    assert KEY not in server.log_path.read_text(errors="replace")  # the startup summary included
