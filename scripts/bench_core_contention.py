"""What a little CPU taken by another process costs a multi-threaded forward: tokens/s alone and beside a spinner.

The spinner is a child process that busies one core for `--duty` of every 10 ms (0.1: a tenth of a core, about
what the HTTP frontend uses under load). Rounds alternate alone / beside it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from in_process_bench import add_model_args, load_runner, token_batches  # noqa: E402

# The spinner: a bare interpreter (no torch import to pay for inside the timed window), ready once it prints.
SPINNER = """
import os, sys, time
duty, niceness = float(sys.argv[1]), int(sys.argv[2])
if niceness == 20:  # SCHED_IDLE: runs only on a core nothing else wants
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
else:
    os.nice(niceness)
print("ready", flush=True)
period = 0.01
while True:  # busy for `duty` of every period, asleep for the rest, until killed
    started = time.perf_counter()
    while time.perf_counter() - started < duty * period:
        pass
    time.sleep(period * (1 - duty))
"""


def start_spinner(duty: float, niceness: int) -> subprocess.Popen:
    spinner = subprocess.Popen(
        [sys.executable, "-c", SPINNER, str(duty), str(niceness)], stdout=subprocess.PIPE, text=True
    )
    assert spinner.stdout is not None and spinner.stdout.readline().strip() == "ready"
    return spinner


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(parser, texts=600)
    parser.add_argument("--batches-per-round", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duty", type=float, default=0.1, help="fraction of one core the spinner takes")
    parser.add_argument("--spinner-nice", type=int, default=0, help="the spinner's niceness (0-19); 20: SCHED_IDLE")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runner, config = load_runner(args)
    batches = token_batches(args, config.context_length)
    for batch in batches[:2]:
        runner.embed(batch)
    measured = batches[2 : 2 + args.batches_per_round] or batches
    tokens = sum(sum(map(len, batch)) for batch in measured)
    results: dict[str, list[float]] = {"alone": [], "beside_spinner": []}
    for _ in range(args.rounds):
        for name in results:
            spinner = start_spinner(args.duty, args.spinner_nice) if name == "beside_spinner" else None
            started = time.perf_counter()
            for batch in measured:
                runner.embed(batch)
            results[name].append(round(tokens / (time.perf_counter() - started), 1))
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    alone, beside = (sum(v) / len(v) for v in results.values())
    report = {
        "model": args.model_path,
        "threads": args.threads,
        "spinner_cores": args.duty,
        "spinner_nice": args.spinner_nice,
        **{f"{name}_tokens_per_s": values for name, values in results.items()},
        "change": round(beside / alone - 1, 4),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
