"""The GPU check runs end to end on the CPU (tiny shapes), so the GPU run is not its first run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from scripts.gpu_wheels import PINNED
from tests.support.launch import REPO_ROOT

pytestmark = pytest.mark.slow  # runs a script end to end: `make test-slow`


def test_gpu_check_dry_run_reports_each_step_then_prints_the_table_last(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), HF_HUB_OFFLINE="1", PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {(r["model"], r["dtype"]): r for r in report["rows"]}
    assert set(rows) == {(m, d) for m in ("bge-tiny", "qwen3-tiny") for d in ("float32", "bfloat16")}
    for (_, dtype), row in rows.items():
        assert row["min_cosine"] >= (0.99999 if dtype == "float32" else 0.999), row
        assert row["engine_tok_s"] > 0 and row["transformers_tok_s"] > 0
        assert row["backend"] == "torch_native"
    kernels = json.loads((tmp_path / "kernels.json").read_text())
    assert len(kernels["cases"]) == 4 and all(c["relative_error"] < 1e-6 for c in kernels["cases"])
    summary = proc.stdout[proc.stdout.index("== gpu_check ") :]
    assert "kernels   ok (" in summary and "check     ok (" in summary and "memory    ok (" in summary
    memory = json.loads((tmp_path / "memory.json").read_text())
    assert memory["batches"] == 20 and memory["rss_end_mb"] > 0 and memory["cuda_mb"] == {}
    table = (tmp_path / "table.txt").read_text()
    assert "matmul peak" in table and "qwen3-tiny" in table
    assert proc.stdout.rstrip().endswith(table.rstrip())  # the table is the last thing printed


def copy_of_the_check(tmp_path):
    (tmp_path / "scripts").mkdir()
    for name in ("gpu_check.sh", "gpu_wheels.py"):
        shutil.copy(REPO_ROOT / "scripts" / name, tmp_path / "scripts" / name)
    return dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"))


def test_without_the_carried_wheels_the_gpu_part_refuses_to_run(tmp_path):
    env = copy_of_the_check(tmp_path)
    (tmp_path / ".whl").mkdir()
    for name, version in PINNED.items():
        if name != "nvidia-ml-py":  # the wheel the old fetch script forgot
            (tmp_path / ".whl" / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"")
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert f"missing wheels in .whl/: nvidia-ml-py=={PINNED['nvidia-ml-py']}" in proc.stderr
    assert "refusing to run the GPU part without the pinned wheels" in proc.stderr
    assert not (tmp_path / ".site").exists()  # nothing was installed, nothing measured
    shutil.rmtree(tmp_path / ".whl")
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "scripts/fetch_gpu_wheels.sh" in proc.stderr
