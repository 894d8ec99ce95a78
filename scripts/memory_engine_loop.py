"""Resident memory of the engine alone: batches of random shapes through `ModelRunner.embed`, RSS sampled per batch.

Each batch holds 1 to --max-seqs random sequences of 1 to --max-len token ids, so nearly every batch
has a shape not seen before, as under real traffic. The allocator is whatever the process runs with:
preload one to compare (`LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`), or set glibc's
`MALLOC_*` variables. Prints RSS before the model loads, after its warm-up, at the checkpoints, its peak
(sampled after every batch) and at the end; the allocator in use, glibc's heap figures, live Python
objects, batches/s and the engine's tokens/s. With `--device cuda`, also torch's CUDA allocator per
window between checkpoints: allocated and reserved at the checkpoint, and the highest of each within
the window. Exits 1 when --check is given and RSS at the last batch is more than --max-growth above
RSS at the --plateau-from batch (or, on a GPU, reserved memory likewise).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/memory_engine_loop.py --batches 2000 --dtype bfloat16 --check
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.model_config import ModelConfig  # noqa: E402
from engine.model_runner import ModelRunner  # noqa: E402
from processes.allocator import allocator_in_use, release_free_memory, resident_bytes  # noqa: E402
from scripts.gpu_check import DRY_SHAPES, SHAPES, build_reference  # noqa: E402
from server.launch.args import default_model_path  # noqa: E402

RANDOM_SHAPES = {**SHAPES, **DRY_SHAPES}  # the GPU check's model shapes, and its tiny ones for a CPU dry run


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )  # fmt: skip
    ]


def glibc_heap_mb() -> dict[str, float]:
    """glibc's own view: bytes in its heaps (arena), in mmapped chunks, in use, and free but kept."""
    libc = ctypes.CDLL(None)
    if allocator_in_use() != "glibc" or not hasattr(libc, "mallinfo2"):
        return {}
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {
        "heap": round(info.arena / 2**20, 1),
        "mmapped": round(info.hblkhd / 2**20, 1),
        "in_use": round(info.uordblks / 2**20, 1),
        "free_kept": round(info.fordblks / 2**20, 1),
    }


def random_batch(
    rng: np.random.Generator, max_seqs: int, max_len: int, vocab: int, max_tokens: int = 0
) -> list[np.ndarray]:
    """1 to max_seqs sequences of 1 to max_len tokens; with max_tokens, only as many as fit that budget."""
    lengths = rng.integers(1, max_len + 1, size=int(rng.integers(1, max_seqs + 1)))
    if max_tokens:  # as the scheduler forms batches: whole sequences up to the token budget, at least one
        fitting = np.cumsum(lengths) <= max_tokens
        lengths = lengths[: max(1, int(fitting.sum()))]
    return [rng.integers(1, vocab, size=int(n), dtype=np.int32) for n in lengths]


def rss_mb() -> float:
    return resident_bytes(os.getpid()) / 2**20


def cuda_window_mb(device: torch.device) -> dict[str, float]:
    """torch's CUDA allocator now and at its highest since the last call (which starts a new window); {} off a GPU."""
    if device.type != "cuda":
        return {}
    figures = {
        "allocated": torch.cuda.memory_allocated(device),
        "reserved": torch.cuda.memory_reserved(device),  # the GPU's footprint: what the caching allocator holds
        "window_peak_allocated": torch.cuda.max_memory_allocated(device),
        "window_peak_reserved": torch.cuda.max_memory_reserved(device),
    }
    torch.cuda.reset_peak_memory_stats(device)
    return {name: round(value / 2**20, 1) for name, value in figures.items()}


def load_runner(args: argparse.Namespace) -> tuple[ModelConfig, ModelRunner]:
    """The model at --model-path (default: the embedded MiniLM), or seeded random weights at --random-shape."""
    packed = not args.no_packed_linear
    if not args.random_shape:
        config = ModelConfig.load(args.model_path or default_model_path(), dtype=args.dtype, device=args.device)
        return config, ModelRunner(config, args.device, args.attention_backend, pack_cpu_weights=packed)
    with tempfile.TemporaryDirectory() as folder:
        reference = build_reference(RANDOM_SHAPES[args.random_shape], Path(folder), args.device)
        config = ModelConfig.load(folder, dtype=args.dtype, device=args.device)
        weights = reference.to(getattr(torch, args.dtype)).state_dict().items()
        runner = ModelRunner(config, args.device, args.attention_backend, weights=weights, pack_cpu_weights=packed)
    del reference, weights
    gc.collect()
    if runner.device.type == "cuda":
        torch.cuda.empty_cache()  # the reference model's blocks are no part of the engine's footprint
    return config, runner


def run_loop(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    rss_start = rss_mb()  # Python, torch and the engine's modules, before the model loads
    config, runner = load_runner(args)
    runner.warmup(args.max_batch_tokens)
    release_free_memory()  # as the scheduler does once its model is ready
    if args.tracemalloc:
        tracemalloc.start()
    rng = np.random.default_rng(args.seed)
    checkpoints = sorted({*args.checkpoints, args.plateau_from, args.batches})
    timeline: dict[int, float] = {0: rss_mb()}
    peak_rss, peak_batch = timeline[0], 0
    python_objects: dict[int, int] = {}
    cuda_windows: dict[int, dict[str, float]] = {0: cuda_window_mb(runner.device)}
    tokens, forward_s = 0, 0.0
    loop_started = time.perf_counter()
    for index in range(1, args.batches + 1):
        sequences = random_batch(rng, args.max_seqs, args.max_len, config.vocab_size, args.max_batch_tokens)
        started = time.perf_counter()
        runner.embed(sequences)  # returns host numpy, so a GPU has finished the batch
        forward_s += time.perf_counter() - started
        tokens += sum(len(s) for s in sequences)
        if args.trim_every and index % args.trim_every == 0:
            release_free_memory()
        rss = rss_mb()
        if rss > peak_rss:
            peak_rss, peak_batch = rss, index
        if index in checkpoints:
            timeline[index] = rss
            python_objects[index] = len(gc.get_objects())
            cuda_windows[index] = cuda_window_mb(runner.device)
            print(
                f"batch {index}: {rss:.0f} MB, {tokens / forward_s:.0f} tokens/s {cuda_windows[index] or ''}",
                file=sys.stderr,
            )
    loop_s = time.perf_counter() - loop_started
    plateau, last = timeline[args.plateau_from], timeline[args.batches]
    report = {
        "dtype": args.dtype,
        "device": str(runner.device),
        "attention_backend": runner.attn.name,
        "packed_linear": not args.no_packed_linear,
        "max_batch_tokens": args.max_batch_tokens,
        "threads": torch.get_num_threads(),
        "allocator": allocator_in_use(),
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "ONEDNN_", "DNNL_", "LRU_"))},
        "trim_every": args.trim_every,
        "batches": args.batches,
        "rss_start_mb": round(rss_start, 1),
        "rss_after_warmup_mb": round(timeline[0], 1),
        "rss_peak_mb": round(peak_rss, 1),
        "rss_peak_batch": peak_batch,
        "rss_end_mb": round(last, 1),
        "rss_mb": {str(k): round(v, 1) for k, v in sorted(timeline.items())},
        "growth_after_plateau": round(last / plateau - 1, 4),
        "python_objects": {str(k): v for k, v in python_objects.items()},
        "glibc_heap_mb": glibc_heap_mb(),
        "cuda_mb": {str(k): v for k, v in cuda_windows.items() if v},
        "batches_per_s": round(args.batches / loop_s, 3),
        "engine_tokens_per_s": round(tokens / forward_s),
    }
    if cuda_windows[0]:
        reserved_at_plateau = cuda_windows[args.plateau_from]["reserved"]
        report["cuda_reserved_growth_after_plateau"] = round(
            cuda_windows[args.batches]["reserved"] / reserved_at_plateau - 1, 4
        )
    if args.tracemalloc:
        report["tracemalloc_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 2)
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to watch the caching allocator's footprint")
    parser.add_argument("--no-packed-linear", action="store_true", help="plain F.linear instead of oneDNN packing")
    parser.add_argument("--max-seqs", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=0,
        help="cut each batch at this many tokens, as the scheduler's --max-prefill-tokens does (0: no cut)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--model-path", default=None, help="default: the embedded all-MiniLM-L6-v2")
    parser.add_argument(
        "--random-shape",
        default=None,
        choices=sorted(RANDOM_SHAPES),
        help="seeded random weights at one of scripts/gpu_check.py's shapes instead of --model-path (needs transformers)",
    )
    parser.add_argument("--attention-backend", default="auto")
    parser.add_argument("--checkpoints", type=int, nargs="*", default=[10, 50, 100, 200, 500, 1000, 1500, 2000])
    parser.add_argument("--plateau-from", type=int, default=500, help="the batch whose RSS the end is compared to")
    parser.add_argument(
        "--trim-every",
        type=int,
        default=0,
        help="hand free memory back to the OS (jemalloc purge, glibc malloc_trim) after every N batches (0: never)",
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also report memory Python itself allocated")
    parser.add_argument("--check", action="store_true", help="exit 1 when RSS grew more than --max-growth")
    parser.add_argument("--max-growth", type=float, default=0.10)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch sees no CUDA device")
    args.plateau_from = min(args.plateau_from, args.batches)
    args.checkpoints = [c for c in args.checkpoints if c <= args.batches]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run_loop(args)
    print(json.dumps(report))
    grew = max(report["growth_after_plateau"], report.get("cuda_reserved_growth_after_plateau", 0.0))
    return 1 if args.check and grew > args.max_growth else 0


if __name__ == "__main__":
    sys.exit(main())
