"""The servers the benchmarks compare, each one process tree on loopback: started, loaded, measured, stopped.

Ours (`python -m server.launch_server`) and vLLM's CPU server (its own venv, see ../shared/guides/peers.md),
both through tests/support's RunningServer, which logs to a file and waits for /health.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from bench_serving import run_load  # noqa: E402

from tests.support.launch import RunningServer  # noqa: E402

SERVED_NAME = "bench"  # vLLM answers 404 to any other model name, so both servers get this one


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants alive now, read from /proc by psutil."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def start_ours(model_path: str, dtype: str, extra: tuple[str, ...] = (), timeout: float = 300) -> RunningServer:
    args = ["--model-path", model_path, "--served-model-name", SERVED_NAME, "--dtype", dtype, "--allow-auto-truncate"]
    return _ready(RunningServer([*args, *extra], wait=False), timeout)


def start_vllm(python: str, model_path: str, dtype: str, kv_cache_gib: int, timeout: float = 600) -> RunningServer:
    """vLLM's OpenAI server in pooling mode, computing on every core (its fast setting here, see peers.md)."""
    env = {
        "VLLM_CPU_OMP_THREADS_BIND": f"0-{os.cpu_count() - 1}",
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
    }
    args = ["--model", model_path, "--runner", "pooling", "--served-model-name", SERVED_NAME, "--dtype", dtype]
    command = [python, "-m", "vllm.entrypoints.openai.api_server"]
    return _ready(RunningServer(args, command=command, env=env, wait=False), timeout)


def _ready(server: RunningServer, timeout: float) -> RunningServer:
    """Wait for /health; on failure or Ctrl-C stop the whole tree while its root still holds the children."""
    deadline = time.monotonic() + timeout
    try:
        while server.proc.poll() is None and time.monotonic() < deadline:
            try:
                if server.health().status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server not ready (exit code {server.proc.poll()}); its log:\n{server.log()[-3000:]}")
    except BaseException:
        stop_tree(server)
        raise


def stop_tree(server: RunningServer) -> None:
    """Stop the server, then kill any descendant that outlived it (vLLM's engine core must not linger)."""
    try:
        descendants = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    server.stop(timeout=60)
    _, alive = psutil.wait_procs(descendants, timeout=15)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=15)


@dataclass
class LoadSpec:
    """One cell's load: which texts, how many per request, how many requests in flight."""

    texts: list[str]
    inputs_per_request: int
    concurrency: int
    num_requests: int = 0  # 0: each text once
    extra_body: dict = field(default_factory=dict)


def measured_load(server: RunningServer, spec: LoadSpec, max_seconds: float) -> dict:
    """run_load's report plus `cores_busy`: the server tree's CPU seconds over the load's wall time."""
    url = f"{server.base_url}/v1/embeddings"
    requests = spec.num_requests or -(-len(spec.texts) // spec.inputs_per_request)
    cpu_before, started = process_tree_cpu_seconds(server.proc.pid), time.perf_counter()
    report = asyncio.run(
        run_load(
            url, SERVED_NAME, spec.texts, spec.concurrency, spec.inputs_per_request, requests, max_seconds,
            "float", None, spec.extra_body,
        )
    )  # fmt: skip
    wall = time.perf_counter() - started
    report["cores_busy"] = (process_tree_cpu_seconds(server.proc.pid) - cpu_before) / wall
    return report
