"""scripts/memory_engine_loop.py in its CPU form: the report the GPU footprint check reads, on a tiny random model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from scripts.memory_engine_loop import parse_args, random_batch


@pytest.mark.parametrize("shape", ["bge-tiny", "qwen3-tiny"])
def test_report_gives_rss_start_warmup_peak_end_and_rate(shape):
    argv = ["--random-shape", shape, "--batches", "6", "--max-seqs", "4", "--max-len", "40",
            "--threads", "1", "--checkpoints", "2", "4", "--plateau-from", "2"]  # fmt: skip
    # Its own process, as it is run: the test process's memory, grown by the tests before it, would be the start.
    done = subprocess.run(
        [sys.executable, "scripts/memory_engine_loop.py", *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["device"] == "cpu" and report["batches"] == 6
    assert set(report["rss_mb"]) == {"0", "2", "4", "6"}
    assert report["rss_after_warmup_mb"] == report["rss_mb"]["0"] > report["rss_start_mb"] > 0
    assert report["rss_peak_mb"] >= max(report["rss_mb"].values())
    assert report["rss_end_mb"] == report["rss_mb"]["6"]
    assert report["batches_per_s"] > 0 and report["engine_tokens_per_s"] > 0
    assert set(report["python_objects"]) == {"2", "4", "6"}
    assert report["cuda_mb"] == {}  # torch's CUDA allocator is read only on a GPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_device_without_cuda_is_refused_with_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--device", "cuda"])
    assert exit_info.value.code == 2


def test_a_token_budget_cuts_batches_at_whole_sequences_as_the_scheduler_does():
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, 64, 200, 1000, max_tokens=2048) for _ in range(200)]
    sizes = [sum(len(seq) for seq in batch) for batch in batches]
    assert all(size <= 2048 or len(batch) == 1 for size, batch in zip(sizes, batches, strict=True))
    assert max(sizes) > 1900  # the budget is reached, not just respected
    uncut = [random_batch(np.random.default_rng(0), 64, 200, 1000) for _ in range(50)]
    assert max(sum(len(seq) for seq in batch) for batch in uncut) > 2048
