"""FlashInfer kernels for the GPU check: build every variant up front in one parallel build, then check each.

FlashInfer 0.6 compiles a kernel module per (dtype, head size) on first use, one after the other. This builds
the modules the check needs in one ninja run (MAX_JOBS jobs), times it, then compares FlashInfer with
torch_native on a ragged batch for each case and reports any module compiled after the build (a missed
variant). Writes kernels.json to --out. `--dry-run` skips the build and runs the comparison on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.attention.base import AttentionBackend  # noqa: E402
from engine.attention.flashinfer_backend import unsupported_reason  # noqa: E402
from engine.attention.torch_native import TorchNativeBackend  # noqa: E402
from engine.forward_batch import ForwardBatch  # noqa: E402
from scripts.gpu_check import SHAPES, head_dim_of  # noqa: E402

# (heads, kv_heads, head_dim): bge-large's attention, then Qwen3-0.6B's grouped-query attention
CASES = [(16, 16, 64), (16, 8, 128)]
RAGGED_LENS = [1, 7, 64, 300, 33]
MAX_RELATIVE_ERROR = 1e-2  # bf16 kernel against a float32 reference


def kernel_variants(dtype_names: list[str]) -> list[tuple[str, int]]:
    """(dtype, head size) of every FlashInfer module the check uses: the models' shapes and the attention cases."""
    head_dims = {head_dim_of(shape) for shape in SHAPES.values()} | {case[2] for case in CASES}
    return sorted((d, h) for d in dtype_names for h in head_dims if unsupported_reason({h}, d) is None)


def build_kernels(variants: list[tuple[str, int]], device: str) -> dict:
    """Build the batch prefill module of each variant, all in one parallel ninja run; returns names and seconds."""
    from flashinfer.jit import build_jit_specs, gen_batch_prefill_module
    from flashinfer.utils import PosEncodingMode, determine_attention_backend

    no_rope = PosEncodingMode["NONE"].value
    specs = []
    for dtype_name, head_dim in variants:
        dtype = getattr(torch, dtype_name)
        backend = determine_attention_backend(torch.device(device), no_rope, False, False, dtype, dtype)
        # What plan() asks for on our calls: same q/kv/out dtype, int32 offsets, no RoPE in the kernel,
        # no sliding window, no logits soft cap, no fp16 QK reduction.
        specs.append(
            gen_batch_prefill_module(
                backend, dtype, dtype, dtype, torch.int32, head_dim, head_dim, no_rope, False, False, False
            )
        )
    started = time.perf_counter()
    build_jit_specs(specs, verbose=False)
    return {"modules": [spec.name for spec in specs], "build_seconds": time.perf_counter() - started}


def attention_error(backend: AttentionBackend, case: tuple[int, int, int], causal: bool, dtype, device: str) -> float:
    """Relative error of `backend` against float32 torch_native on one ragged batch of strided q/k/v."""
    heads, kv_heads, head_dim = case
    torch.manual_seed(0)
    batch = ForwardBatch.from_sequences([np.zeros(n, dtype=np.int32) for n in RAGGED_LENS], device)
    qkv = torch.randn(batch.num_tokens, heads + 2 * kv_heads, head_dim, device=device, dtype=dtype)
    q, k, v = qkv.split([heads, kv_heads, kv_heads], dim=1)  # views of one projection, as the models pass them
    backend.prepare(batch)
    out = backend.forward(q, k, v, batch, causal, head_dim**-0.5)
    reference = TorchNativeBackend()
    reference.prepare(batch)
    expected = reference.forward(q.float(), k.float(), v.float(), batch, causal, head_dim**-0.5)
    return float((out.float() - expected).norm() / expected.norm())


def compiled_modules() -> set[str]:
    base = Path(os.environ.get("FLASHINFER_WORKSPACE_BASE", Path.home()))
    return {p.stem for p in base.glob(".cache/flashinfer/**/cached_ops/*/*.so")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="no build; torch_native against itself on the CPU")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".cache/gpu_check")))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"variants": [], "modules": [], "build_seconds": None, "compiled_after_build": [], "cases": []}
    if args.dry_run:
        device, dtype, backend = "cpu", torch.float32, TorchNativeBackend()
    else:
        from engine.attention.flashinfer_backend import FlashInferBackend

        device, dtype = "cuda", torch.bfloat16
        report["variants"] = kernel_variants(["bfloat16"])
        report.update(build_kernels(report["variants"], device))
        print(
            f"kernels: built {len(report['modules'])} FlashInfer modules in {report['build_seconds']:.1f} s "
            f"(MAX_JOBS={os.environ.get('MAX_JOBS', 'ninja default')})",
            flush=True,
        )
        backend = FlashInferBackend(device)  # explicitly FlashInfer: never a silent fallback
    before = compiled_modules()
    for case in CASES:
        for causal in (False, True):
            error = attention_error(backend, case, causal, dtype, device)
            report["cases"].append({"heads_kv_dim": case, "causal": causal, "relative_error": error})
            print(f"kernels: {backend.name} heads/kv/dim {case} causal={causal}: relative error {error:.2e}")
    report["compiled_after_build"] = sorted(compiled_modules() - before)
    if report["compiled_after_build"]:
        print(f"kernels: WARNING compiled after the build (missed variants): {report['compiled_after_build']}")
    (args.out / "kernels.json").write_text(json.dumps(report, indent=2))
    worst = max(c["relative_error"] for c in report["cases"])
    if worst >= MAX_RELATIVE_ERROR:
        sys.exit(f"kernels: relative error {worst:.2e} >= {MAX_RELATIVE_ERROR}")


if __name__ == "__main__":
    main()
