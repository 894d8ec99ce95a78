"""The vLLM comparison runs end to end against our server alone, and builds inputs of an exact token count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from scripts.corpus import fixed_length_texts
from server.launch.args import default_model_path
from tests.support.launch import REPO_ROOT


@pytest.mark.parametrize("num_tokens", [3, 9, 16, 64, 256])
def test_fixed_length_texts_have_exactly_that_many_minilm_tokens(num_tokens):
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    texts = fixed_length_texts(tokenizer, num_tokens, 50, seed=num_tokens)
    assert [len(ids) for ids in tokenizer(texts)["input_ids"]] == [num_tokens] * 50
    if num_tokens >= 9:  # one word can repeat; longer texts do not
        assert len(set(texts)) == 50


def test_fixed_length_texts_refuse_a_length_the_special_tokens_fill():
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    with pytest.raises(ValueError, match="no room"):
        fixed_length_texts(tokenizer, 2, 1)  # [CLS] and [SEP] alone


def test_bench_vs_vllm_without_vllm_says_how_to_get_it():
    proc = subprocess.run(
        [sys.executable, "scripts/bench_vs_vllm.py", "--vllm-python", "/nonexistent/python"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "--skip-vllm" in proc.stderr and "peers.md" in proc.stderr


@pytest.mark.slow  # runs the script end to end: `make test-slow`
def test_bench_vs_vllm_reports_every_row_for_our_server(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "scripts/bench_vs_vllm.py", "--skip-vllm", "--num-texts", "20", "--repeats", "1",
         "--dtypes", "bfloat16", "--lengths", "16", "64", "--latency-requests", "5", "--cosine-texts", "2",
         "--model-fraction-of-peak", "--idle-seconds", "1", "--max-seconds", "60", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert list(report["runs"]) == ["minilm/bfloat16"] and list(report["runs"]["minilm/bfloat16"]) == ["ours"]
    cells = report["medians"]["minilm/bfloat16"]["ours"]
    assert set(cells) == {"1x1", "1x64", "32x1", "32x64", "short", "len16", "len64", "idle", "cosine"}
    assert 0 <= cells["idle"] < 0.5  # an idle server keeps no core busy
    for key in ("1x1", "1x64", "32x1", "32x64", "short", "len16", "len64"):
        assert cells[key]["tokens_per_s"] > 0 and cells[key]["cores_busy"] > 0 and cells[key]["p50_ms"] > 0
    session = report["runs"]["minilm/bfloat16"]["ours"][0]
    assert session["len64"]["tokens"] == session["len64"]["requests"] * 32 * 64  # exact lengths served
    assert session["short"]["tokens"] == 5 * 9
    assert cells["cosine"] >= 0.999  # bfloat16 against float32 sentence-transformers
    assert abs(report["linear_flops_per_token"]["minilm"] - 21.2e6) < 0.1e6
    assert report["bf16_linear_peak_gflops"] > 0
    table = proc.stdout.strip().splitlines()
    assert table[0] == "| tokens/s | ours bf16 |" and table == report["table"].splitlines()
    labels = [line.split(" | ")[0].removeprefix("| ") for line in table[2:]]
    assert labels[:-1] == [
        "1 input/request, concurrency 1", "1 input/request, concurrency 64", "32 inputs/request, concurrency 1",
        "32 inputs/request, concurrency 64", "one 9-token input, concurrency 1, p50",
        f"server cores busy at 1/64 and 32/64 (of {os.cpu_count()})", "server cores busy while idle",
        "min cosine vs float32 sentence-transformers",
        "16 tokens each, 32 inputs/request, concurrency 64", "64 tokens each, 32 inputs/request, concurrency 64",
    ]  # fmt: skip
    assert labels[-1].startswith("model GFLOP/s at 32/64, of one bf16 linear's")
