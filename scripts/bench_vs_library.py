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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_servers import SERVED_NAME, process_tree_cpu_seconds, start_ours, stop_tree  # noqa: E402
from bench_serving import run_load  # noqa: E402
from corpus import realistic_texts, short_text  # noqa: E402

from tests.support.launch import RunningServer  # noqa: E402


def library_tokens_per_s(texts: list[str], tokens: int, model) -> float:
    start = time.perf_counter()
    model.encode(texts, batch_size=32, convert_to_numpy=True)
    return tokens / (time.perf_counter() - start)


def server_tokens_per_s(server: RunningServer, texts: list[str], concurrency: int) -> dict:
    url = f"{server.base_url}/v1/embeddings"
    return asyncio.run(run_load(url, SERVED_NAME, texts, concurrency, 1, len(texts), 600, "float", None))


def short_input_latency(servers: dict[str, RunningServer], repeats: int, requests: int) -> dict:
    """Concurrency 1, one short input: per server, the median over interleaved runs of each run's percentiles."""
    runs: dict[str, list[dict]] = {name: [] for name in servers}

    def one_run(server: RunningServer, count: int) -> dict:
        url = f"{server.base_url}/v1/embeddings"
        return asyncio.run(run_load(url, SERVED_NAME, [short_text()], 1, 1, count, 120, "float", None))["latency_ms"]

    for server in servers.values():
        one_run(server, 50)  # warm-up: connection, first-request paths, the threads' first wake-ups
    for _ in range(repeats):
        for name, server in servers.items():
            runs[name].append(one_run(server, requests))
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
    servers: dict[str, RunningServer] = {}
    results: dict[str, list] = {"library": [], "fp32": [], "bf16": []}
    try:
        for name, dtype in (("fp32", "float32"), ("bf16", "bfloat16")):
            servers[name] = start_ours(default_model_path(), dtype, tuple(extra))
        library_tokens_per_s(texts[:64], 1, library)  # warm-up
        for server in servers.values():
            server_tokens_per_s(server, texts[:128], args.concurrency)  # warm-up
        for _ in range(args.repeats):
            results["library"].append(library_tokens_per_s(texts, tokens, library))
            for name, server in servers.items():
                results[name].append(server_tokens_per_s(server, texts, args.concurrency)["tokens_per_s"])
        latency = short_input_latency(servers, args.repeats, args.latency_requests)
        idle = {}
        for name, server in servers.items():
            before = process_tree_cpu_seconds(server.proc.pid)
            time.sleep(args.idle_seconds)
            idle[name] = (process_tree_cpu_seconds(server.proc.pid) - before) / args.idle_seconds
    finally:
        for server in servers.values():
            stop_tree(server)
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
