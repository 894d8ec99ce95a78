"""Scale out: data-parallel replicas share the load and agree, and two launchers on loopback act as two nodes."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from server.launch.cpu_threads import usable_cores
from tests.support.compare import assert_close_vectors
from tests.support.launch import RunningServer, free_port
from tests.support.single_process import single_process_vectors
from tests.support.texts import varied_texts
from tests.support.wait import wait_until


def _post_embed(base_url: str, texts: list[str]) -> np.ndarray:
    response = httpx.post(f"{base_url}/v1/embeddings", json={"input": texts}, timeout=120)
    assert response.status_code == 200, response.text
    return np.array([d["embedding"] for d in response.json()["data"]])


@pytest.fixture(scope="module")
def minilm_dp2(minilm):
    server = RunningServer(["--model-path", minilm, "--dp-size", "2"])
    yield server
    server.stop()


def test_dp2_equals_one_process_and_both_replicas_work_under_concurrent_load(minilm_dp2, minilm):
    texts = varied_texts(48, long_words=100)
    requests = [texts[i : i + 3] for i in range(0, len(texts), 3)]  # 16 requests of 3 inputs
    with ThreadPoolExecutor(max_workers=8) as pool:
        vectors = list(pool.map(lambda chunk: _post_embed(minilm_dp2.base_url, chunk), requests))
    assert_close_vectors(np.concatenate(vectors), single_process_vectors(minilm, texts))
    stats = minilm_dp2.stats()
    sent = [replica["requests_sent"] for replica in stats["replicas"]]
    assert len(sent) == 2 and sum(sent) == len(requests) and min(sent) > 0, stats["replicas"]
    batches = [replica["batches_done"] for replica in stats["engine"]["replicas"]]
    assert min(batches) > 1, stats["engine"]  # each replica ran more than one forward
    assert all(replica["tokens_outstanding"] == 0 for replica in stats["replicas"])


def test_one_scheduler_per_replica(minilm_dp2):
    names = sorted(p.name() for p in minilm_dp2.children if p.name().startswith("embedserve-"))
    assert names == ["embedserve-d0t0", "embedserve-d1t0", "embedserve-resu"]


def test_replicas_share_the_cores(minilm_dp2):
    # each of the two replicas takes half the cores, not all of them (server/launch/cpu_threads.py)
    summary = next(line for line in minilm_dp2.log().splitlines() if "ready: " in line)
    assert f"threads={max(1, usable_cores() // 2)} tp=1 dp=2" in summary, summary


def _worker_node(args: list[str]) -> RunningServer:
    """Node 1 of two: no HTTP; started without waiting, since its ranks wait for node 0 to form the group."""
    return RunningServer([*args, "--node-rank", "1"], ready_log_line="ranks joining", wait=False)


def test_two_nodes_on_loopback_equal_one_process_and_node_1_stops_with_node_0(minilm):
    multi_node = ["--model-path", minilm, "--tp-size", "2", "--nnodes", "2", "--dist-init-addr", f"127.0.0.1:{free_port()}"]  # fmt: skip
    with _worker_node(multi_node) as node1, RunningServer([*multi_node, "--node-rank", "0"]) as node0:
        node1.wait_ready()
        assert "embedserve-tp1" in [p.name() for p in node1.children]
        assert "embedserve-tp1" not in [p.name() for p in node0.children]  # node 0 runs rank 0 only
        texts = varied_texts(30, long_words=100)  # past the 20 fixed texts: two 100-word paragraphs too
        assert_close_vectors(_post_embed(node0.base_url, texts), single_process_vectors(minilm, texts))

        assert node0.stop(signal.SIGTERM) == 0
        assert node1.proc.wait(timeout=60) != 0, "node 1 exits non-zero: its group is gone"
        assert "lost rank 0" in node1.log()
        assert node1.leftover_processes() == []
        assert node0.leftover_processes() == []


@pytest.mark.slow  # a variant of what a quicker test covers: `make test-slow`
def test_a_rank_dying_on_node_1_stops_node_0_and_node_1(minilm):
    multi_node = ["--model-path", minilm, "--tp-size", "2", "--nnodes", "2", "--dist-init-addr", f"127.0.0.1:{free_port()}"]  # fmt: skip
    node0_args = [*multi_node, "--node-rank", "0", "--child-death-exit-delay", "5"]
    with _worker_node(multi_node) as node1, RunningServer(node0_args) as node0:
        node1.wait_ready()
        node1.child("tp1").kill()  # idle server: node 0 hears of it from the peer watch, not from a request
        health = wait_until(lambda: (h := node0.health()).status_code != 200 and h, 20, 0.2, "node 0 to turn unhealthy")
        assert health.status_code == 503 and "embedserve-scheduler-tp0 died" in health.text
        assert node0.proc.wait(timeout=30) != 0
        assert node1.proc.wait(timeout=30) != 0
        assert node0.leftover_processes() == [] and node1.leftover_processes() == []


@pytest.mark.slow  # a variant of what a quicker test covers: `make test-slow`
def test_worker_node_stops_cleanly_on_sigterm_before_node_0_appears(minilm):
    args = ["--model-path", minilm, "--tp-size", "2", "--nnodes", "2", "--dist-init-addr", f"127.0.0.1:{free_port()}"]
    # Ready once its ranks are started and waiting for node 0 (a fixed sleep raced slow imports on a busy machine).
    with _worker_node(args) as node1:
        node1.wait_ready()
        assert node1.stop(signal.SIGTERM) == 0
        assert node1.leftover_processes() == []
