"""Soak test: many concurrent requests of mixed sizes with random client aborts against a real loopback server.

Every answer is checked against sentence-transformers' float32 vector for the same text (cosine >= 0.99999,
or 0.999 for a server run with --dtype bfloat16). Reports lost
(no answer), wrong (a vector off the reference) and failed (an error status) counts, 429s retried,
and every process's resident memory over time (a timeline, and the scheduler's growth after a warm-up).
Exits 1 when anything was lost, wrong or failed, or the scheduler grew more than --max-scheduler-growth.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/soak.py --requests 2000 --concurrency 64 --abort-fraction 0.1
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/soak.py --requests 20000 --warmup-requests 2000 --max-scheduler-growth 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.launch import RunningServer  # noqa: E402
from tests.support.models import minilm_path  # noqa: E402
from tests.support.texts import varied_texts  # noqa: E402

MIN_COSINE = 0.99999  # the project's bound in float32
MIN_COSINE_BFLOAT16 = 0.999  # bfloat16's bound against the float32 reference (docs/benchmarks.md)
REQUEST_SIZES = (1, 1, 2, 3, 4, 8, 16)


def _role(process: psutil.Process) -> str:
    """scheduler, result, tp0, d1t0, ...: the kernel keeps 15 bytes of "embedserve-<role>" (processes/lifecycle.py)."""
    short = process.name().removeprefix("embedserve-")
    return next((role for role in ("scheduler", "result") if role.startswith(short)), short)


def process_memory_mb(server: RunningServer) -> dict[str, float]:
    """Resident MB of the frontend and of each child (multiprocessing's own helper shows as `python`)."""
    processes = {"frontend": psutil.Process(server.proc.pid)}
    processes.update({_role(p): p for p in server.children})
    return {role: round(p.memory_info().rss / 2**20, 1) for role, p in processes.items()}


class MemorySampler:
    """Samples every process's memory every `interval` seconds on a thread, and once when `warmup` requests are done."""

    def __init__(self, server: RunningServer, outcomes: Counter, interval: float, warmup: int):
        self.server, self.outcomes, self.interval, self.warmup = server, outcomes, interval, warmup
        self.timeline: list[dict] = []
        self.after_warmup: dict[str, float] | None = None
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def done(self) -> int:
        return sum(self.outcomes.values()) - self.outcomes["rejected_429_retried"]

    def sample(self) -> dict:
        row = {"s": round(time.monotonic() - self._started, 1), "done": self.done(), **process_memory_mb(self.server)}
        self.timeline.append(row)
        return row

    def _run(self) -> None:
        next_sample = time.monotonic()
        while not self._stop.wait(0.2):
            if self.after_warmup is None and self.done() >= self.warmup:
                self.after_warmup = self.sample()
            elif time.monotonic() >= next_sample:
                self.sample()
                next_sample = time.monotonic() + self.interval

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            self.sample()  # the last row of the timeline is the end


def _vectors(payload: dict) -> np.ndarray:
    rows = [
        np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
        if isinstance(d["embedding"], str)
        else d["embedding"]
        for d in sorted(payload["data"], key=lambda d: d["index"])
    ]
    return np.asarray(rows, dtype=np.float64)


def min_cosine_for(server_args: list[str]) -> float:
    """The bound an answer must meet: the float32 one unless the server runs in bfloat16."""
    dtype = next((server_args[i + 1] for i, arg in enumerate(server_args[:-1]) if arg == "--dtype"), None)
    for arg in server_args:
        dtype = arg.split("=", 1)[1] if arg.startswith("--dtype=") else dtype
    return MIN_COSINE_BFLOAT16 if dtype == "bfloat16" else MIN_COSINE


def _cosine(payload: dict, reference: np.ndarray) -> float:
    """The lowest cosine of the answer's vectors to the reference; -1 when the shapes differ."""
    got = _vectors(payload)
    if got.shape != reference.shape:
        return -1.0
    cosine = (got * reference).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
    return float(cosine.min())


class AnswerCheck:
    """The cosine bound every answer must meet, and the lowest cosine any answer had."""

    def __init__(self, bound: float):
        self.bound = bound
        self.lowest: float | None = None

    def is_right(self, payload: dict, reference: np.ndarray) -> bool:
        cosine = _cosine(payload, reference)
        self.lowest = cosine if self.lowest is None else min(self.lowest, cosine)
        return cosine >= self.bound


async def _one_request(
    client, url, body, reference, abort_after, outcomes: Counter, failures: list, check: AnswerCheck
) -> None:
    while True:
        try:
            if abort_after is not None:
                response = await asyncio.wait_for(client.post(url, json=body), abort_after)
            else:
                response = await client.post(url, json=body, timeout=300)
        except asyncio.TimeoutError:
            outcomes["aborted"] += 1  # the client hung up on purpose
            return
        except httpx.HTTPError as error:
            outcomes["lost"] += 1
            failures.append(f"{type(error).__name__}: {error}")
            return
        if response.status_code == 429:
            outcomes["rejected_429_retried"] += 1
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        if response.status_code != 200:
            outcomes["failed"] += 1
            failures.append(f"{response.status_code}: {response.text[:200]}")
        else:
            outcomes["ok" if check.is_right(response.json(), reference) else "wrong"] += 1
        return


async def _drive(
    base_url: str, reference: np.ndarray, texts: list[str], args, outcomes: Counter, check: AnswerCheck
) -> list[str]:
    rng = random.Random(args.seed)
    failures: list[str] = []
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    gate = asyncio.Semaphore(args.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def bounded(i: int) -> None:
            picks = [rng.randrange(len(texts)) for _ in range(rng.choice(REQUEST_SIZES))]
            body = {"input": [texts[p] for p in picks], "encoding_format": rng.choice(("float", "base64"))}
            abort_after = rng.uniform(0.005, 0.3) if rng.random() < args.abort_fraction else None
            async with gate:
                await _one_request(
                    client, f"{base_url}/v1/embeddings", body, reference[picks], abort_after, outcomes, failures, check
                )

        await asyncio.gather(*(bounded(i) for i in range(args.requests)))
    return failures


def _wait_settled(server: RunningServer, timeout: float = 60) -> dict:
    """The server's counters once nothing is admitted or pending any more (a leak would never settle)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = server.stats()
        if stats["admitted_requests"] == 0 and stats["engine_pending_requests"] == 0:
            return stats
        if time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


def run_soak(args: argparse.Namespace) -> dict:
    from sentence_transformers import SentenceTransformer

    texts = varied_texts(args.num_texts, seed=args.seed)
    model_path = args.model_path or minilm_path()
    reference = SentenceTransformer(model_path, device="cpu").encode(texts, normalize_embeddings=True)
    server = RunningServer(["--model-path", model_path, "--allow-auto-truncate", *args.server_arg])
    outcomes: Counter = Counter()
    check = AnswerCheck(min_cosine_for(args.server_arg))
    warmup = min(args.warmup_requests, args.requests)
    try:
        with MemorySampler(server, outcomes, args.sample_every, warmup) as memory:
            started = time.monotonic()
            failures = asyncio.run(
                _drive(server.base_url, np.asarray(reference, np.float64), texts, args, outcomes, check)
            )
            duration = time.monotonic() - started
            stats = _wait_settled(server)
        healthy = httpx.get(f"{server.base_url}/health").status_code == 200
    finally:
        exit_code = server.stop()
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "abort_fraction": args.abort_fraction,
        **{key: outcomes[key] for key in ("ok", "aborted", "lost", "wrong", "failed", "rejected_429_retried")},
        "first_failures": failures[:5],
        "min_cosine_bound": check.bound,
        "lowest_cosine": check.lowest,
        "duration_s": round(duration, 1),
        "requests_per_s": round(args.requests / duration, 1),
        "memory_mb_start": _roles(memory.timeline[0]),
        "memory_mb_after_warmup": _roles(memory.after_warmup or memory.timeline[-1]),
        "memory_mb_end": _roles(memory.timeline[-1]),
        "warmup_requests": warmup,
        "scheduler_growth_after_warmup": _growth(memory, "scheduler"),
        "max_scheduler_growth": args.max_scheduler_growth,
        "memory_timeline": memory.timeline,
        "server_aborted_by_client": stats["requests_aborted_by_client"],
        "server_inputs_dropped": stats["engine"]["inputs_dropped"],
        "server_inputs_discarded": stats["engine"]["inputs_discarded"],
        "server_settled": stats["admitted_requests"] == 0 and stats["engine_pending_requests"] == 0,
        "healthy_after": healthy,
        "exit_code": exit_code,
    }


def _roles(row: dict) -> dict[str, float]:
    return {key: value for key, value in row.items() if key not in ("s", "done")}


def _growth(memory: MemorySampler, role: str) -> float | None:
    """The role's growth from the warm-up sample to the end (0.05 = 5%); None without such a process."""
    after, end = memory.after_warmup or memory.timeline[-1], memory.timeline[-1]
    return round(end[role] / after[role] - 1, 4) if role in after and role in end else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--abort-fraction", type=float, default=0.1, help="share of clients that hang up early")
    parser.add_argument("--num-texts", type=int, default=64, help="distinct texts the requests draw from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-path", default=None, help="default: the embedded all-MiniLM-L6-v2")
    parser.add_argument("--server-arg", action="append", default=[], help="extra server flag (repeatable)")
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--warmup-requests", type=int, default=2000, help="memory growth is measured from here")
    parser.add_argument(
        "--max-scheduler-growth", type=float, default=None, help="fail when the scheduler grew more (0.1 = 10%%)"
    )
    return parser.parse_args(argv)


def is_clean(report: dict) -> bool:
    limit, growth = report["max_scheduler_growth"], report["scheduler_growth_after_warmup"]
    return (report["lost"] == report["wrong"] == report["failed"] == 0 and report["healthy_after"]
            and report["server_settled"] and report["exit_code"] == 0
            and (limit is None or (growth is not None and growth < limit)))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    report = run_soak(parse_args(argv))
    print(json.dumps(report, indent=2))
    return 0 if is_clean(report) else 1


if __name__ == "__main__":
    sys.exit(main())
