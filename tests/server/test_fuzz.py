"""Property-based fuzzing of /v1/embeddings on a real server: never a 500, a crash or a hang; errors in the envelope."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.launch import RunningServer

# Bounded so the module stays well under a minute on a shared CPU; no example database on disk.
FUZZ = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ALLOWED = {200, 400, 413}

huge_ints = st.integers(min_value=-(2**80), max_value=2**80)
small_ids = st.integers(min_value=-3, max_value=31000)
any_text = st.text(alphabet=st.characters(codec=None), max_size=40)  # includes lone surrogates
json_leaf = st.one_of(st.none(), st.booleans(), huge_ints, st.floats(allow_nan=False), any_text)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=3), max_leaves=12
)
inputs = st.one_of(
    json_value,
    any_text,
    st.lists(any_text, max_size=6),
    st.lists(small_ids | huge_ints, max_size=12),
    st.lists(st.lists(small_ids, max_size=8), max_size=4),
    st.lists(st.one_of(any_text, st.lists(small_ids, max_size=4), json_leaf), max_size=5),
)
bodies = st.fixed_dictionaries(
    {"input": inputs},
    optional={
        "model": json_value,
        "encoding_format": st.sampled_from(["float", "base64"]) | json_value,
        "dimensions": huge_ints | json_value,
        "user": json_value,
    },
)


@pytest.fixture(scope="module")
def server():
    server = RunningServer(["--max-request-bytes", "65536", "--max-inputs-per-request", "64"])
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        server.client = client
        yield server
    assert httpx.get(f"{server.base_url}/health").status_code == 200, "the fuzzing left the server unhealthy"
    assert server.stop() == 0


def _check(response: httpx.Response) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.text[:500])
    payload = response.json()
    if response.status_code == 200:
        assert payload["object"] == "list" and payload["data"]
        for item in payload["data"]:
            embedding = item["embedding"]
            assert isinstance(embedding, str) or len(embedding) == 384
        return
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == response.status_code


@FUZZ
@given(body=bodies, ascii_escapes=st.booleans())
def test_fuzzed_json_bodies(server, body, ascii_escapes):
    # ensure_ascii writes lone surrogates as \ud800 escapes; otherwise they become invalid UTF-8 bytes.
    text = json.dumps(body, ensure_ascii=ascii_escapes)
    _check(server.client.post("/v1/embeddings", content=text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(
    raw=st.binary(max_size=300) | st.text(max_size=100).map(str.encode),
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin-1",
            "",
        ]
    ),  # fmt: skip
)
def test_fuzzed_raw_bodies_and_content_types(server, raw, content_type):
    _check(server.client.post("/v1/embeddings", content=raw, headers={"content-type": content_type}))


@FUZZ
@given(depth=st.integers(min_value=1, max_value=100_000), leaf=st.sampled_from(["1", '"a"', "[]", "{}", "null"]))
def test_deeply_nested_inputs(server, depth, leaf):
    body = '{"input": ' + "[" * depth + leaf + "]" * depth + "}"
    _check(server.client.post("/v1/embeddings", content=body.encode()))
