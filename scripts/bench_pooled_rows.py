"""In-process A/B: the last layer on every row against on the pooled rows alone, alternating batch by batch.

Each batch of the realistic mix (2,048-token batches, as the CPU scheduler forms them) runs once each way, the
order swapped every batch, so the VM's drift falls on both. Prints one JSON line: tokens/s each way and the ratio.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from in_process_bench import ab_report, alternate, load_runner, parse_model_args, token_batches  # noqa: E402


def main() -> None:
    args = parse_model_args(__doc__, texts=800)
    runner, config = load_runner(args)
    method = runner.pooled_row_method
    if method is None:
        raise SystemExit(f"{args.model_path}: {config.pooling} pooling reads every row; nothing to compare")
    batches = token_batches(args, config.context_length)

    def use(setting: str | None) -> Callable[[], None]:
        return lambda: setattr(runner, "pooled_row_method", setting)

    seconds, tokens = alternate(runner, batches, {"every_row": use(None), "pooled_rows": use(method)})
    report = ab_report(args, batches, seconds, tokens, pooling=method)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
