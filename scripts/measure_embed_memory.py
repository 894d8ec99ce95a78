"""Resident memory of `embedserve embed` over a large file: each process's RSS once the first chunk is saved (start),
its peak, and its last sample (end). Flat means the file's size does not show in any process's memory.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_embed_memory.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from corpus import realistic_texts  # noqa: E402


def write_corpus(path: Path, rows: int) -> None:
    """`rows` JSONL rows cycling through 1,000 realistic texts, written as a stream."""
    texts = realistic_texts(1000)
    with path.open("w", encoding="utf-8") as file:
        for index in range(rows):
            file.write(json.dumps({"id": f"doc-{index}", "text": texts[index % len(texts)]}) + "\n")


_ROLES = {"embedserve-sche": "scheduler", "embedserve-resu": "result"}  # kernel names, cut at 15 bytes


def _name(process: psutil.Process, main_pid: int) -> str:
    if process.pid == main_pid:
        return "main"
    if "resource_tracker" in " ".join(process.cmdline()):
        return "resource_tracker"  # multiprocessing's helper, one per interpreter
    return _ROLES.get(process.name(), process.name())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--dtype", default="float32", help="the engine's --dtype (bfloat16: the same rows sooner)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embed-memory-") as folder:
        source, output = Path(folder) / "corpus.jsonl", Path(folder) / "vectors.parquet"
        write_corpus(source, args.rows)
        command = [sys.executable, "-m", "embedserve", "embed", "--input", str(source), "--output", str(output),
                   "--chunk-size", str(args.chunk_size), "--allow-auto-truncate", "--dtype", args.dtype]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE)
        main_process = psutil.Process(proc.pid)
        first_chunk = output.with_name(output.name + ".partial") / "chunk-00000000.parquet"
        samples: dict[str, list[float]] = {}
        start: dict[str, float] = {}
        while proc.poll() is None:
            try:
                processes = [main_process, *main_process.children(recursive=True)]
                rss = {_name(p, proc.pid): p.memory_info().rss / 2**20 for p in processes}
            except psutil.Error:
                break  # a process ended between the listing and the reading: the run is finishing
            if not start and first_chunk.exists():
                start = rss
            if start:
                for name, value in rss.items():
                    samples.setdefault(name, []).append(value)
            time.sleep(args.interval)
        summary = proc.communicate()[0].decode()
        seconds = time.perf_counter() - started
    result = {
        "rows": args.rows,
        "chunk_size": args.chunk_size,
        "dtype": args.dtype,
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "samples": len(next(iter(samples.values()), [])),
        "rss_mib": {
            name: {"start": round(start[name], 1), "peak": round(max(values), 1), "end": round(values[-1], 1)}
            for name, values in samples.items()
            if name in start
        },
        "summary": summary.strip().splitlines(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
