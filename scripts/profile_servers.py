"""Where each server's CPU goes under the same load: per process, and (with py-spy) per function.

Starts ours and/or vLLM's CPU server one at a time (as bench_vs_vllm.py does), warms it up, then runs one load
cell while it reads every process's CPU time and, given --py-spy, samples each process's Python (and native)
stacks. Prints, per server: each process's share of the cores, and its functions with the most samples at the
top of the stack (self time) and anywhere on it (total time). Loopback only; py-spy needs ptrace rights (root or
CAP_SYS_PTRACE) and is a tool here, not a dependency: `pip install py-spy` into any environment.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_models import minilm, qwen3_embedding_shape  # noqa: E402
from bench_servers import LoadSpec, measured_load, start_ours, start_vllm, stop_tree  # noqa: E402
from corpus import realistic_texts  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", nargs="+", default=["ours", "vllm"], choices=["ours", "vllm"])
    parser.add_argument("--model", default="minilm", choices=["minilm", "decoder"])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--inputs-per-request", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--num-texts", type=int, default=3000, help="realistic texts in the measured load")
    parser.add_argument("--py-spy", help="path to the py-spy executable; without it, CPU per process only")
    parser.add_argument("--native", action="store_true", help="py-spy --native: C/C++ frames too (slower to sample)")
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second per process")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--vllm-python", default=str(Path.home() / ".venvs/vllm/bin/python"))
    parser.add_argument("--server-args", default="", help="extra flags for our server")
    parser.add_argument("--out", help="write the JSON report here too")
    return parser.parse_args()


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for proc in processes:
        try:
            times = proc.cpu_times()
            seconds[proc.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return seconds


def label(proc: psutil.Process) -> str:
    try:
        name = proc.name()
        if name.startswith("python"):  # the launcher or an unnamed child: its module says what it is
            command = proc.cmdline()
            module = next((part for part in command if part.startswith(("server.", "vllm.", "-c"))), "")
            name = f"{name} {module}".strip()
        return f"{name} ({proc.pid})"
    except psutil.NoSuchProcess:
        return f"exited ({proc.pid})"


def start_py_spy(py_spy: str, pid: int, seconds: float, rate: int, native: bool, folder: str) -> subprocess.Popen:
    output = Path(folder) / f"{pid}.txt"
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
               "--format", "raw", "--nonblocking", "--output", str(output)] + (["--native"] if native else [])  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _short_frame(frame: str) -> str:
    """py-spy's "function (path/to/file.py:line)" -> "function file.py:line"."""
    match = re.fullmatch(r"(.*?) \((.*):(\d+)\)", frame)
    return f"{match[1]} {Path(match[2]).name}:{match[3]}" if match else frame


def summarize_stacks(path: Path, top: int) -> dict:
    """py-spy's raw (collapsed) stacks -> the functions with the most samples on top (self) and anywhere (total)."""
    own, anywhere, total = collections.Counter(), collections.Counter(), 0
    if not path.exists():
        return {"samples": 0}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short_frame(frame) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            anywhere[frame] += int(count)

    def shares(counter: collections.Counter) -> list[tuple[str, float]]:
        return [(frame, round(count / total, 3)) for frame, count in counter.most_common(top)]

    return {"samples": total, "self": shares(own), "total": shares(anywhere)}


def profile(peer: str, args: argparse.Namespace) -> dict:
    model = minilm() if args.model == "minilm" else qwen3_embedding_shape()
    if peer == "ours":
        server, extra_body = start_ours(model.path, args.dtype, tuple(args.server_args.split())), {}
    else:
        server = start_vllm(args.vllm_python, model.path, args.dtype, model.vllm_kv_cache_gib)
        extra_body = {"truncate_prompt_tokens": model.truncate_tokens} if model.truncate_tokens else {}
    try:
        texts = realistic_texts(args.num_texts)
        measured_load(
            server, LoadSpec(texts[: model.warmup_texts * 2], args.inputs_per_request, 64, 0, extra_body), 600
        )
        spec = LoadSpec(texts, args.inputs_per_request, args.concurrency, 0, extra_body)
        processes = tree(server.proc.pid)
        # one unmeasured pass of the same load tells py-spy how long to sample
        duration = measured_load(server, spec, 600)["seconds"] if args.py_spy else 0.0
        with tempfile.TemporaryDirectory() as folder:
            spies = (
                [start_py_spy(args.py_spy, p.pid, duration, args.rate, args.native, folder) for p in processes]
                if args.py_spy
                else []
            )
            before, started = cpu_seconds(processes), time.perf_counter()
            report = measured_load(server, spec, 600)
            wall = time.perf_counter() - started
            after = cpu_seconds(processes)
            for spy in spies:
                spy.wait(timeout=duration + 60)
            result = {"tokens_per_s": report["tokens_per_s"], "wall_s": round(wall, 2), "processes": []}
            for proc in processes:
                if proc.pid not in after:
                    continue
                entry = {"process": label(proc), "cores": round((after[proc.pid] - before.get(proc.pid, 0)) / wall, 3)}
                if args.py_spy:
                    entry["stacks"] = summarize_stacks(Path(folder) / f"{proc.pid}.txt", args.top)
                result["processes"].append(entry)
        return result
    finally:
        stop_tree(server)


def print_report(peer: str, result: dict) -> None:
    busy = sum(p["cores"] for p in result["processes"])
    print(f"\n## {peer}: {result['tokens_per_s']:,.0f} tokens/s, {busy:.2f} cores busy over {result['wall_s']} s")
    for entry in sorted(result["processes"], key=lambda p: -p["cores"]):
        print(f"- {entry['process']}: {entry['cores']:.2f} cores")
        stacks = entry.get("stacks", {})
        if stacks.get("samples"):
            print(f"  self:  {'; '.join(f'{frame} {share:.0%}' for frame, share in stacks['self'])}")
            print(f"  total: {'; '.join(f'{frame} {share:.0%}' for frame, share in stacks['total'])}")


def main() -> None:
    args = parse_args()
    results = {}
    for peer in args.peers:
        results[peer] = profile(peer, args)
        print_report(peer, results[peer])
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
