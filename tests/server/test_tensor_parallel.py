"""Tensor parallel over gloo: two ranks give one process's vectors, listening only on loopback; bad layouts refused."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys

import httpx
import numpy as np
import psutil
import pytest
from openai import OpenAI

from tests.support.compare import assert_close_vectors
from tests.support.launch import REPO_ROOT, RunningServer
from tests.support.single_process import single_process_vectors
from tests.support.texts import varied_texts
from tests.support.wait import wait_until


def _embed(server: RunningServer, texts: list[str]) -> np.ndarray:
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="x")
    response = client.embeddings.create(model="m", input=texts)  # base64, as the OpenAI client asks
    return np.array([d.embedding for d in response.data])


@pytest.fixture(scope="module")
def minilm_tp2(minilm):
    server = RunningServer(["--model-path", minilm, "--tp-size", "2"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def qwen3_tp2(tiny_decoder):
    # 4 query heads and 2 KV heads over 2 ranks: each rank runs 2 query heads on its own KV head
    server = RunningServer(["--model-path", tiny_decoder("qwen3-causal-lm"), "--tp-size", "2"])
    yield server
    server.stop()


def test_bert_tp2_equals_one_process(minilm_tp2, minilm):
    texts = varied_texts(24, long_words=100)
    assert_close_vectors(_embed(minilm_tp2, texts), single_process_vectors(minilm, texts))


@pytest.mark.slow  # a variant of what a quicker test covers: `make test-slow`
def test_qwen3_tp2_equals_one_process(qwen3_tp2, tiny_decoder):
    texts = varied_texts(16, long_words=200)
    assert max(len(text.split()) for text in texts) == 200  # a long paragraph among the short texts
    assert_close_vectors(_embed(qwen3_tp2, texts), single_process_vectors(tiny_decoder("qwen3-causal-lm"), texts))


def test_one_scheduler_process_per_rank(minilm_tp2):
    names = sorted(p.name() for p in minilm_tp2.children if p.name().startswith("embedserve-"))
    assert names == ["embedserve-resu", "embedserve-tp0", "embedserve-tp1"]  # ps keeps 15 bytes
    info = httpx.get(f"{minilm_tp2.base_url}/get_server_info").json()
    assert info["tp_size"] == 2 and info["dp_size"] == 1


def test_single_node_ranks_listen_only_on_loopback(minilm_tp2):
    """torch's tcp:// rendezvous store listens on every interface, unauthenticated: one node must not use it."""
    processes = [psutil.Process(minilm_tp2.proc.pid), *minilm_tp2.children]
    sockets = [(p.name(), c) for p in processes for c in p.net_connections(kind="inet")]
    listening = [(name, c.laddr) for name, c in sockets if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 3, listening  # HTTP, the rendezvous store, gloo's pairs
    assert all(_is_loopback(laddr.ip) for _, laddr in listening), listening
    assert all(_is_loopback(c.raddr.ip) for _, c in sockets if c.raddr), sockets


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tp-size", "5"], "12 attention heads do not divide by --tp-size 5"),
        (["--tp-size", "3", "--nnodes", "2", "--dist-init-addr", "127.0.0.1:1"], "must divide by --nnodes"),
        (["--tp-size", "2", "--nnodes", "2"], "needs --dist-init-addr"),
    ],
)
def test_unsplittable_layout_fails_at_startup_with_a_clear_message(minilm, extra, message):
    proc = _run_launcher(["--model-path", minilm, *extra])
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_multimodal_model_refuses_tensor_parallel(tmp_path):
    from tests.support.multimodal_models import build_tiny_clip

    proc = _run_launcher(["--model-path", build_tiny_clip(tmp_path / "clip"), "--tp-size", "2"])
    assert proc.returncode == 2, proc.stderr
    assert "CLIPModel is multimodal: --tp-size above 1 serves text models only" in proc.stderr


def _run_launcher(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.launch_server", "--port", "1", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip


def _health_after_change(server: RunningServer) -> httpx.Response:
    """/health once it stops answering 200 (the frontend learns of a death on its event loop, not instantly)."""
    return wait_until(
        lambda: (response := server.health()).status_code != 200 and response, timeout=10, message="/health to fail"
    )


# Last in the module: it kills the shared TP server.
def test_killing_one_rank_makes_the_server_unhealthy_and_exit(minilm_tp2):
    follower = next(p for p in minilm_tp2.children if p.name() == "embedserve-tp1")
    os.kill(follower.pid, signal.SIGKILL)
    health = _health_after_change(minilm_tp2)
    assert health.status_code == 503, health.text
    assert "embedserve-scheduler-tp1 died" in health.json()["error"]["message"]
    assert minilm_tp2.proc.wait(timeout=30) != 0
    assert minilm_tp2.leftover_processes() == []
