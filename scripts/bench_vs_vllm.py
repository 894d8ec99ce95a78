"""Issue-18 benchmark: our server against vLLM's CPU server, same model, dtype and texts, interleaved; a Markdown table.

One repetition of a server is a session: start it, warm it up, run every cell once, stop it (process tree
included) before the other server starts, since two servers on two cores would measure each other. Sessions
alternate and so does which server goes first (ours, vLLM, vLLM, ours, ...), so drift and order fall on both;
a fresh start per repetition also samples start-up luck (memory placement, thread binding). The table shows
medians over --repeats. Loopback only. ../shared/guides/peers.md says how to install vLLM beside the project.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_models import BenchModel, linear_flops_per_token, minilm, qwen3_embedding_shape  # noqa: E402
from bench_servers import (  # noqa: E402
    SERVED_NAME,
    LoadSpec,
    measured_load,
    process_tree_cpu_seconds,
    start_ours,
    start_vllm,
    stop_tree,
)
from bench_vs_vllm_table import markdown_table, medians  # noqa: E402
from corpus import fixed_length_texts, realistic_texts  # noqa: E402

THROUGHPUT_CELLS = {"1x1": (1, 1), "1x64": (1, 64), "32x1": (32, 1), "32x64": (32, 64)}  # inputs/request, clients
SHORT_INPUT_TOKENS = 9
PEAK_ROWS = (2048, 8192)  # rows of one linear layer: large enough to reach the CPU's peak


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm-python", default=str(Path.home() / ".venvs/vllm/bin/python"))
    parser.add_argument("--skip-vllm", action="store_true", help="run our server alone")
    parser.add_argument("--repeats", type=int, default=3)
    # 3,000: with 1,000 texts vLLM's mixed-length cells came out 40% below what it reaches with more,
    # most likely its own warm-up (docs/benchmarks.md, "Third run").
    parser.add_argument("--num-texts", type=int, default=3000, help="realistic texts per cell, and per length")
    parser.add_argument(
        "--dtypes", nargs="*", default=["float32", "bfloat16"], choices=["float32", "bfloat16"],
        help="MiniLM's dtypes; none with --decoder runs the decoder row alone",
    )  # fmt: skip
    parser.add_argument("--lengths", type=int, nargs="*", default=[], help="fixed input lengths in tokens")
    parser.add_argument("--length-inputs-per-request", type=int, default=32)
    parser.add_argument("--decoder", action="store_true", help="add the Qwen3-Embedding-0.6B-shaped row (bf16)")
    parser.add_argument("--decoder-texts", type=int, default=200)
    parser.add_argument("--model-fraction-of-peak", action="store_true")
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--cosine-texts", type=int, default=8)
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="how long each idle server's CPU is read")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound on each cell's load")
    parser.add_argument("--server-args", default="", help="extra flags for our server")
    parser.add_argument("--out", help="write the JSON report here too")
    return parser.parse_args()


def minilm_plan(args: argparse.Namespace, tokenizer) -> dict[str, LoadSpec]:
    texts = realistic_texts(args.num_texts)
    plan = {key: LoadSpec(texts, inputs, clients) for key, (inputs, clients) in THROUGHPUT_CELLS.items()}
    short = fixed_length_texts(tokenizer, SHORT_INPUT_TOKENS, 1)
    plan["short"] = LoadSpec(short, 1, 1, num_requests=args.latency_requests)
    for length in args.lengths:
        fixed = fixed_length_texts(tokenizer, length, args.num_texts, seed=length)
        plan[f"len{length}"] = LoadSpec(fixed, args.length_inputs_per_request, 64)
    return plan


def decoder_plan(args: argparse.Namespace) -> dict[str, LoadSpec]:
    return {"1x64": LoadSpec(realistic_texts(args.decoder_texts), 1, 64)}


def warm_up(server, model: BenchModel, extra_body: dict, plan: dict[str, LoadSpec], max_seconds: float) -> None:
    """Connections, first-request paths, oneDNN's primitives for common shapes: the same for both servers."""
    texts = plan["1x64"].texts[: model.warmup_texts]
    specs = [LoadSpec(texts, 1, 64, extra_body=extra_body), LoadSpec(texts, 32, 64, extra_body=extra_body)]
    if "short" in plan:
        warmup_requests = min(50, plan["short"].num_requests)
        specs.append(LoadSpec(plan["short"].texts, 1, 1, num_requests=warmup_requests, extra_body=extra_body))
    for spec in specs:
        measured_load(server, spec, max_seconds)


def embed(server, texts: list[str], extra_body: dict) -> np.ndarray:
    body = {"model": SERVED_NAME, "input": texts, "encoding_format": "float", **extra_body}
    response = httpx.post(f"{server.base_url}/v1/embeddings", json=body, timeout=120)
    response.raise_for_status()
    return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float64)


def min_cosine(vectors: np.ndarray, reference: np.ndarray) -> float:
    cosines = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
    return float(cosines.min())


def run_session(peer: str, model: BenchModel, dtype: str, plan: dict[str, LoadSpec], args, reference) -> dict:
    """Start `peer`'s server, run every cell of `plan` once, stop it; each cell's run_load report by key."""
    if peer == "ours":
        server = start_ours(model.path, dtype, tuple(args.server_args.split()))
        extra_body = {}
    else:
        server = start_vllm(args.vllm_python, model.path, dtype, model.vllm_kv_cache_gib)
        extra_body = {"truncate_prompt_tokens": model.truncate_tokens} if model.truncate_tokens else {}
    try:
        warm_up(server, model, extra_body, plan, args.max_seconds)
        cells = {}
        for key, spec in plan.items():
            spec = LoadSpec(spec.texts, spec.inputs_per_request, spec.concurrency, spec.num_requests, extra_body)
            cells[key] = measured_load(server, spec, args.max_seconds)
            if cells[key]["errors"]:
                raise RuntimeError(
                    f"{peer} {dtype} {key}: failed requests {cells[key]['errors']}\n{server.log()[-3000:]}"
                )
        cpu_before = process_tree_cpu_seconds(server.proc.pid)
        time.sleep(args.idle_seconds)
        cells["idle"] = {"cores_busy": (process_tree_cpu_seconds(server.proc.pid) - cpu_before) / args.idle_seconds}
        if reference is not None:
            cells["cosine"] = {"min": min_cosine(embed(server, reference[0], extra_body), reference[1])}
        return cells
    finally:
        stop_tree(server)


def reference_vectors(model: BenchModel, count: int) -> tuple[list[str], np.ndarray] | None:
    """float32 sentence-transformers in this process, computed before any server runs."""
    if count <= 0:
        return None
    from sentence_transformers import SentenceTransformer

    texts = realistic_texts(count, seed=1)
    library = SentenceTransformer(model.path, device="cpu")
    return texts, library.encode(texts, convert_to_numpy=True).astype(np.float64)


def bf16_linear_peak(model_path: str) -> dict[int, dict]:
    """GFLOP/s of one bf16 linear at the model's MLP shape, by row count, plain and oneDNN-packed.

    The best of them is the CPU's ceiling (where the CPU has AMX, packed bfloat16 goes far above AVX-512).
    """
    import torch
    from bench_linear import linear_gflops

    from engine.model_config import ModelConfig

    text = ModelConfig.load(model_path).text
    # A throwaway first round: the first timed size otherwise pays for the CPU and thread pool waking up
    # (a 2,048-row figure of 419 GFLOP/s where a warm one is 3,210, docs/benchmarks.md).
    linear_gflops(text.hidden_size, text.intermediate_size, PEAK_ROWS[0], torch.bfloat16, 1.0)
    return {
        rows: linear_gflops(text.hidden_size, text.intermediate_size, rows, torch.bfloat16, 1.0) for rows in PEAK_ROWS
    }


def cpu_model() -> str:
    """The CPU's name and its matrix extensions: the peak and both servers' bf16 paths depend on them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return " ".join([name, *sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "avx512_vnni"))])


def versions(args: argparse.Namespace) -> dict:
    """Our commit and vLLM's version, for the record beside the numbers."""
    import subprocess

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    found = {"embedserve_commit": git.stdout.strip()}
    if not args.skip_vllm:
        query = "import importlib.metadata as m; print(*(d.version for d in m.distributions() if 'vllm' in d.name))"
        vllm = subprocess.run([args.vllm_python, "-c", query], capture_output=True, text=True)
        found["vllm"] = vllm.stdout.strip() or "unknown"
    return found


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a plain kill still runs the finally that stops servers
    peers = ["ours"] if args.skip_vllm else ["ours", "vllm"]
    if not args.skip_vllm and not Path(args.vllm_python).is_file():
        print(
            f"vLLM's Python {args.vllm_python} does not exist: install vLLM's CPU build as "
            "../shared/guides/peers.md says and pass --vllm-python, or run ours alone with --skip-vllm",
            file=sys.stderr,
        )
        raise SystemExit(2)
    from transformers import AutoTokenizer

    encoder = minilm()
    plan = minilm_plan(args, AutoTokenizer.from_pretrained(encoder.path))
    groups = [(encoder, dtype, plan) for dtype in args.dtypes]
    if args.decoder:
        groups.append((qwen3_embedding_shape(), "bfloat16", decoder_plan(args)))
    reference = reference_vectors(encoder, args.cosine_texts if args.dtypes else 0)
    linear = bf16_linear_peak(encoder.path) if args.model_fraction_of_peak else {}
    peak = max((max(run.values()) for run in linear.values()), default=None)
    runs: dict[str, dict[str, list[dict]]] = {}
    for model, dtype, plan in groups:
        group = runs.setdefault(f"{model.key}/{dtype}", {peer: [] for peer in peers})
        for repeat in range(args.repeats):
            for peer in peers if repeat % 2 == 0 else peers[::-1]:
                started = time.perf_counter()
                cells = run_session(peer, model, dtype, plan, args, reference if model is encoder else None)
                group[peer].append(cells)
                print(f"{model.key} {dtype} {peer} repeat {repeat + 1}: {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
    summary = medians(runs)
    flops = {model.key: linear_flops_per_token(model.path) for model, _, _ in groups}
    table = markdown_table(summary, args, peers, flops, peak, os.cpu_count())
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        **versions(args),
        "linear_flops_per_token": flops,
        "bf16_linear_gflops": linear,
        "bf16_linear_peak_gflops": peak,
        "medians": summary,
        "runs": runs,
        "table": table,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(table)


if __name__ == "__main__":
    main()
