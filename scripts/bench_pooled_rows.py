"""In-process A/B: the last layer on every row against on the pooled rows alone, alternating batch by batch.

Each batch of the realistic mix (2,048-token batches, as the CPU scheduler forms them) runs once each way, the
order swapped every batch, so the VM's drift falls on both. Prints one JSON line: tokens/s each way and the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from in_process_bench import add_model_args, load_runner, token_batches  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(parser, texts=800)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runner, config = load_runner(args)
    method = runner.pooled_row_method
    if method is None:
        raise SystemExit(f"{args.model_path}: {config.pooling} pooling reads every row; nothing to compare")
    batches = token_batches(args, config.context_length)
    for batch in batches[:2]:  # warm-up both ways: first-shape primitives, compiled kernels
        for setting in (None, method):
            runner.pooled_row_method = setting
            runner.embed(batch)
    seconds = {"every_row": 0.0, "pooled_rows": 0.0}
    tokens = 0
    for index, batch in enumerate(batches):
        order = ("every_row", "pooled_rows") if index % 2 == 0 else ("pooled_rows", "every_row")
        for name in order:
            runner.pooled_row_method = method if name == "pooled_rows" else None
            started = time.perf_counter()
            runner.embed(batch)
            seconds[name] += time.perf_counter() - started
        tokens += sum(map(len, batch))
    report = {
        "model": args.model_path,
        "pooling": method,
        "dtype": args.dtype,
        "batches": len(batches),
        "tokens": tokens,
        **{f"{name}_tokens_per_s": round(tokens / value, 1) for name, value in seconds.items()},
        "speedup": round(seconds["every_row"] / seconds["pooled_rows"], 4),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
