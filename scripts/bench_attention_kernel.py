"""In-process A/B: bf16 attention by SDPA in length groups against the AMX varlen kernel, alternating batch by batch.

Each batch of the realistic mix (2,048-token batches, as the CPU scheduler forms them) runs once each way, the
order swapped every batch, so the VM's drift falls on both. Prints one JSON line: tokens/s each way, the ratio,
and the lowest cosine between the two ways' vectors of the first batch.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_offline import min_cosine  # noqa: E402
from in_process_bench import ab_report, alternate, load_runner, parse_model_args, token_batches  # noqa: E402


def main() -> None:
    args = parse_model_args(__doc__, texts=800)
    runner, config = load_runner(args)
    kernel = getattr(runner.attn, "varlen_kernel", None)
    if kernel is None:
        raise SystemExit("the AMX varlen kernel does not run here (see the log); nothing to compare")
    batches = token_batches(args, config.context_length)

    def use(setting: object) -> Callable[[], None]:
        return lambda: setattr(runner.attn, "varlen_kernel", setting)

    settings = {"sdpa_groups": use(None), "varlen_kernel": use(kernel)}
    vectors = []
    for switch in settings.values():  # the first batch's vectors each way, for the cosine between them
        switch()
        vectors.append(np.asarray(runner.embed(batches[0]), dtype=np.float32))
    seconds, tokens = alternate(runner, batches, settings)
    print(json.dumps(ab_report(args, batches, seconds, tokens, min_cosine=round(min_cosine(*vectors), 6))))


if __name__ == "__main__":
    main()
