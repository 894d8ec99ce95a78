"""Batches of ever new shapes through ModelRunner.embed plateau in resident memory, in the scheduler's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from server.launch.child_environment import prepare_child_environment
from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow

# Small batches keep the test short; nearly every one still has a token count not seen before, which is
# what grew oneDNN's caches. Cut at a token budget as the scheduler cuts them, and warmed up as the scheduler
# warms up for that budget (every row bucket built first); the plateau is measured from batch 300. The full
# check (2,000 batches at the CPU budget of 2,048 tokens) is a documented run of the same script
# (docs/reliability.md).
LOOP = ["--batches", "600", "--max-seqs", "8", "--max-batch-tokens", "1024", "--plateau-from", "300",
        "--checkpoints", "100", "200", "300", "400", "500", "--threads", "1"]  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
def test_engine_memory_plateaus_across_batch_shapes(dtype, packed):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    prepare_child_environment(env)  # what the launcher gives the scheduler
    command = [sys.executable, "scripts/memory_engine_loop.py", *LOOP, "--dtype", dtype, "--check"]
    if not packed:
        command.append("--no-packed-linear")
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    report = json.loads(done.stdout.splitlines()[-1])
    assert done.returncode == 0, report  # --check: RSS at the end within 10% of RSS at batch 300
    objects = report["python_objects"]
    assert abs(objects["600"] - objects["300"]) < 100, objects  # nothing piles up in Python
