"""GFLOP/s of one linear layer on this CPU: plain F.linear against oneDNN-packed weights, float32 and bfloat16.

The ceiling every CPU throughput figure is judged against: MiniLM's linear layers are 21.2 MFLOP per token.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.layers.cpu_packed_linear import pack_weight, packed_linear, packing_supported  # noqa: E402


def seconds_per_call(fn, args: tuple, min_seconds: float) -> float:
    for _ in range(3):
        fn(*args)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        fn(*args)
        calls += 1
    return elapsed / calls


def linear_gflops(in_features: int, out_features: int, rows: int, dtype: torch.dtype, seconds: float) -> dict:
    """GFLOP/s of `rows` x `in_features` through one `out_features` linear layer: plain, and packed where supported."""
    weight = torch.randn(out_features, in_features).to(dtype)
    bias = torch.randn(out_features).to(dtype)
    x = torch.randn(rows, in_features).to(dtype)
    flop = 2 * rows * in_features * out_features
    result = {"plain_gflops": flop / seconds_per_call(F.linear, (x, weight, bias), seconds) / 1e9}
    if packing_supported(weight):
        packed = pack_weight(weight)
        result["packed_gflops"] = flop / seconds_per_call(packed_linear, (x, packed, bias), seconds) / 1e9
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-features", type=int, default=384)
    parser.add_argument("--out-features", type=int, default=1536)
    parser.add_argument("--rows", type=int, nargs="+", default=[12, 256, 2048, 8192])
    parser.add_argument("--seconds", type=float, default=0.5, help="time spent on each measurement")
    args = parser.parse_args()
    for dtype in (torch.float32, torch.bfloat16):
        for rows in args.rows:
            row = {"dtype": str(dtype).removeprefix("torch."), "rows": rows, "threads": torch.get_num_threads()}
            row |= linear_gflops(args.in_features, args.out_features, rows, dtype, args.seconds)
            # three significant digits: a tiny layer on a busy machine must not round down to 0 GFLOP/s
            print(json.dumps({k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
