"""Issue-7 benchmark: our server (float32 and bfloat16) against sentence-transformers in-process, same texts.

Repetitions are interleaved (library, server fp32, server bf16, ...) and medians reported. Also measures the
latency of one short input at concurrency 1 and the CPU an idle server uses. Loopback only; bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_serving import run_load  # noqa: E402
from corpus import realistic_texts, short_text  # noqa: E402


def start_server(port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "server.launch_server", "--port", str(port), "--allow-auto-truncate", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server on {port} did not start")


def process_tree_cpu_seconds(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def library_tokens_per_s(texts: list[str], tokens: int, model) -> float:
    start = time.perf_counter()
    model.encode(texts, batch_size=32, convert_to_numpy=True)
    return tokens / (time.perf_counter() - start)


def server_tokens_per_s(port: int, texts: list[str], concurrency: int) -> dict:
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    return asyncio.run(run_load(url, "m", texts, concurrency, 1, len(texts), 600, "float", None))


def short_input_latency(servers: dict, repeats: int, requests: int) -> dict:
    """Concurrency 1, one short input: per server, the median over interleaved runs of each run's percentiles."""
    runs: dict[str, list[dict]] = {name: [] for name in servers}

    def one_run(port: int, count: int) -> dict:
        url = f"http://127.0.0.1:{port}/v1/embeddings"
        return asyncio.run(run_load(url, "m", [short_text()], 1, 1, count, 120, "float", None))["latency_ms"]

    for port, _ in servers.values():
        one_run(port, 50)  # warm-up: connection, first-request paths, the threads' first wake-ups
    for _ in range(repeats):
        for name, (port, _) in servers.items():
            runs[name].append(one_run(port, requests))
    return {
        name: {key: statistics.median(run[key] for run in server_runs) for key in server_runs[0]}
        | {"p50_runs": [run["p50"] for run in server_runs]}
        for name, server_runs in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--server-args", default="", help="extra flags for both servers")
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="how long the idle CPU is measured")
    parser.add_argument("--output")
    args = parser.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    from server.launch.args import default_model_path

    texts = realistic_texts(args.num_texts)
    library = SentenceTransformer(default_model_path(), device="cpu")
    tokens = sum(min(len(x), 256) for x in library.tokenizer(texts)["input_ids"])
    extra = args.server_args.split()
    servers = {"fp32": (31001, ["--dtype", "float32", *extra]), "bf16": (31002, ["--dtype", "bfloat16", *extra])}
    procs = {name: start_server(port, flags) for name, (port, flags) in servers.items()}
    results: dict[str, list] = {"library": [], "fp32": [], "bf16": []}
    try:
        library_tokens_per_s(texts[:64], 1, library)  # warm-up
        for port, _ in servers.values():
            server_tokens_per_s(port, texts[:128], args.concurrency)  # warm-up
        for _ in range(args.repeats):
            results["library"].append(library_tokens_per_s(texts, tokens, library))
            for name, (port, _) in servers.items():
                results[name].append(server_tokens_per_s(port, texts, args.concurrency)["tokens_per_s"])
        latency = short_input_latency(servers, args.repeats, args.latency_requests)
        idle = {}
        for name, proc in procs.items():
            before = process_tree_cpu_seconds(proc.pid)
            time.sleep(args.idle_seconds)
            idle[name] = (process_tree_cpu_seconds(proc.pid) - before) / args.idle_seconds
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=60)
    lib = statistics.median(results["library"])
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "texts": len(texts),
        "tokens": tokens,
        "concurrency": args.concurrency,
        "server_args": args.server_args,
        "runs_tokens_per_s": results,
        "median_tokens_per_s": {k: statistics.median(v) for k, v in results.items()},
        "speedup_vs_library": {k: statistics.median(results[k]) / lib for k in ("fp32", "bf16")},
        "short_input_latency_ms": latency,
        "idle_cores_busy": idle,
    }
    print(json.dumps(report, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
