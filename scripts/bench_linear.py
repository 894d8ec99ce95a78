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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-features", type=int, default=384)
    parser.add_argument("--out-features", type=int, default=1536)
    parser.add_argument("--rows", type=int, nargs="+", default=[12, 256, 2048, 8192])
    parser.add_argument("--seconds", type=float, default=0.5, help="time spent on each measurement")
    args = parser.parse_args()
    for dtype in (torch.float32, torch.bfloat16):
        weight = torch.randn(args.out_features, args.in_features).to(dtype)
        bias = torch.randn(args.out_features).to(dtype)
        packed = pack_weight(weight) if packing_supported(weight) else None
        for rows in args.rows:
            x = torch.randn(rows, args.in_features).to(dtype)
            flop = 2 * rows * args.in_features * args.out_features
            row = {"dtype": str(dtype).removeprefix("torch."), "rows": rows, "threads": torch.get_num_threads()}
            row["plain_gflops"] = flop / seconds_per_call(F.linear, (x, weight, bias), args.seconds) / 1e9
            if packed is not None:
                row["packed_gflops"] = flop / seconds_per_call(packed_linear, (x, packed, bias), args.seconds) / 1e9
            # three significant digits: a tiny layer on a busy machine must not round down to 0 GFLOP/s
            print(json.dumps({k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
