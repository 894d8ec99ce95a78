"""GPU check: engine parity and throughput against transformers at real model shapes, with the matmul peak.

Random-weight models at the shapes of bge-large-en-v1.5 (bidirectional, CLS) and Qwen3-Embedding-0.6B
(causal, last token). Prints one table last and writes it, with the JSON report, to --out (default $OUT).
On the GPU it asks for `--backend flashinfer` by default, never `auto`, so it cannot quietly measure
torch_native; rows FlashInfer cannot run (float32) name the backend that ran. `--dry-run` runs tiny shapes on
the CPU with torch_native so the script itself is tested without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.model_config import ModelConfig  # noqa: E402
from engine.model_runner import ModelRunner  # noqa: E402

SHAPES = {
    "bge-large": dict(family="bert", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                      intermediate_size=4096, vocab_size=30522, max_position_embeddings=512),
    "qwen3-0.6b": dict(family="qwen3", hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, intermediate_size=3072, vocab_size=151669,
                       max_position_embeddings=32768),
}  # fmt: skip
DRY_SHAPES = {
    "bge-tiny": dict(family="bert", hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=256, vocab_size=1000, max_position_embeddings=512),
    "qwen3-tiny": dict(family="qwen3", hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1, head_dim=64, intermediate_size=256, vocab_size=1000,
                       max_position_embeddings=4096),
}  # fmt: skip
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def head_dim_of(shape: dict) -> int:
    return shape.get("head_dim", shape["hidden_size"] // shape["num_attention_heads"])


def build_reference(shape: dict, folder: Path, device: str) -> torch.nn.Module:
    """A transformers model with seeded random weights; its config.json is written to `folder`."""
    import transformers

    params = {k: v for k, v in shape.items() if k != "family"}
    torch.manual_seed(0)
    if shape["family"] == "bert":
        config = transformers.BertConfig(**params, architectures=["BertModel"])
        model = transformers.BertModel(config, add_pooling_layer=False)
    else:
        config = transformers.Qwen3Config(**params, architectures=["Qwen3Model"])
        model = transformers.Qwen3Model(config)
    config.save_pretrained(folder)
    return model.to(device).eval()


def length_mix(count: int, max_len: int, seed: int = 0) -> list[int]:
    """The realistic mix: mostly 10-60 tokens, some 100-250, a few at the limit."""
    rng = random.Random(seed)
    lens = []
    for _ in range(count):
        r = rng.random()
        lens.append(rng.randint(10, 60) if r < 0.8 else rng.randint(100, 250) if r < 0.97 else max_len)
    return [min(n, max_len) for n in lens]


def make_inputs(lens: list[int], vocab: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(5, vocab, size=n, dtype=np.int32) for n in lens]


@torch.inference_mode()
def reference_embed(model, seqs: list[np.ndarray], pooling: str, device: str, batch_size: int) -> np.ndarray:
    """What a user would run: transformers with right-padded batches, SDPA, pooled by the attention mask."""
    out = []
    for i in range(0, len(seqs), batch_size):
        chunk = seqs[i : i + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, s in enumerate(chunk):
            ids[row, : len(s)] = torch.from_numpy(s.astype(np.int64))
            mask[row, : len(s)] = 1
        hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        last = mask.sum(1).to(device) - 1
        pooled = hidden[:, 0] if pooling == "cls" else hidden[torch.arange(len(chunk)), last]
        out.append(pooled.float().cpu())
    return torch.cat(out).numpy()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """Median seconds of `fn` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_peak(device: str, dtype: torch.dtype, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, 10)
    return 2 * n**3 / seconds


def model_flops(runner: ModelRunner, lens: list[int], causal: bool) -> float:
    """Linear-layer FLOPs (2 per weight per token) plus attention's two L^2 matmuls per layer."""
    linear = sum(m.weight.numel() for m in runner.model.modules() if hasattr(m, "weight") and m.weight is not None
                 and m.weight.dim() == 2 and not isinstance(m, torch.nn.Embedding))  # fmt: skip
    text = runner.config.text
    attn_width = text.num_heads * text.head_dim
    per_layer_attn = sum(4 * n * n * attn_width for n in lens) * (0.5 if causal else 1.0)
    return 2 * linear * sum(lens) + per_layer_attn * text.num_layers


def check_shape(name: str, shape: dict, device: str, dtype_name: str, backend: str, args) -> dict:
    dtype = _DTYPES[dtype_name]
    with tempfile.TemporaryDirectory() as folder:
        reference = build_reference(shape, Path(folder), device).to(dtype)
        config = ModelConfig.load(folder, context_length=args.max_len, dtype=dtype_name, device=device)
        runner = ModelRunner(config, device, backend, weights=reference.state_dict().items())
    causal = shape["family"] != "bert"
    pooling = config.pooling
    seqs = make_inputs(length_mix(args.num_parity, args.max_len, 1), shape["vocab_size"], 1)
    ours = runner.embed(seqs)
    theirs = reference_embed(reference, seqs, pooling, device, 16)
    cos = cosine_rows(ours, theirs)
    row = {"model": name, "dtype": dtype_name, "backend": runner.attn.name, "min_cosine": float(cos.min()),
           "max_abs_err": float(np.abs(ours - theirs).max())}  # fmt: skip
    if dtype_name == "bfloat16" or args.dry_run:
        lens = length_mix(args.num_bench, args.max_len, 2)
        bench = make_inputs(lens, shape["vocab_size"], 2)
        tokens = sum(lens)
        engine_s = timed(lambda: [runner.embed(bench[i : i + args.batch]) for i in range(0, len(bench), args.batch)], device, args.repeats)  # fmt: skip
        ref_s = timed(lambda: reference_embed(reference, bench, pooling, device, 32), device, args.repeats)
        flops = model_flops(runner, lens, causal)
        row.update(engine_tok_s=tokens / engine_s, transformers_tok_s=tokens / ref_s, speedup=ref_s / engine_s,
                   engine_tflops=flops / engine_s / 1e12)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: tests the script itself")
    parser.add_argument("--backend", default=None, help="default: flashinfer on the GPU, torch_native in a dry run")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".cache/gpu_check")))
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--num-parity", type=int, default=64)
    parser.add_argument("--num-bench", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256, help="inputs per engine forward in the throughput run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    args.backend = args.backend or ("torch_native" if args.dry_run else "flashinfer")
    if args.dry_run:
        args.num_bench, args.repeats, args.max_len, args.batch = 64, 1, 256, 32
    shapes = DRY_SHAPES if args.dry_run else SHAPES
    peak_dtype = torch.float32 if args.dry_run else torch.bfloat16
    peak = matmul_peak(device, peak_dtype, 512 if args.dry_run else 8192)
    rows = []
    for name, shape in shapes.items():
        for dtype_name in ("float32", "bfloat16"):
            rows.append(check_shape(name, shape, device, dtype_name, args.backend, args))
            if device == "cuda":
                torch.cuda.empty_cache()
    for row in rows:
        if "engine_tflops" in row:
            row["fraction_of_peak"] = row["engine_tflops"] * 1e12 / peak
    report = {"date": time.strftime("%Y-%m-%d"), "host": platform.node(), "torch": torch.__version__,
              "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "matmul_peak_tflops": peak / 1e12, "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    table = format_table(report, peak_dtype)
    (args.out / "table.txt").write_text(table + "\n")
    print("\n" + table)


def format_table(report: dict, peak_dtype: torch.dtype) -> str:
    lines = [
        f"{report['device']}  torch {report['torch']}  matmul peak {report['matmul_peak_tflops']:.3f} TFLOP/s ({peak_dtype})",
        f"{'model':<11} {'dtype':<9} {'backend':<12} {'min cos':>9} {'max err':>9} {'engine tok/s':>13} {'hf tok/s':>10} {'x':>5} {'peak%':>6}",
    ]  # fmt: skip
    for r in report["rows"]:
        bench = (f"{r['engine_tok_s']:>13.0f} {r['transformers_tok_s']:>10.0f} {r['speedup']:>5.2f} {100 * r['fraction_of_peak']:>5.1f}%"
                 if "speedup" in r else "")  # fmt: skip
        lines.append(
            f"{r['model']:<11} {r['dtype']:<9} {r['backend']:<12} {r['min_cosine']:>9.6f} {r['max_abs_err']:>9.2e} {bench}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
