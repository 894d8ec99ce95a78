"""Resident memory of each scheduler rank at --tp-size 1 and 2, on a random Qwen3 big enough to see the split.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_tp_memory.py [--hidden 1024 --layers 8]

Builds the model in a temporary folder, starts a loopback server per TP size, sends one request,
and prints each rank's RSS after it (the weights plus torch's own few hundred MB) and its peak.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.decoder_models import qwen_tokenizer_dir  # noqa: E402
from tests.support.launch import RunningServer  # noqa: E402


def build_model(folder: Path, hidden: int, layers: int) -> str:
    import shutil

    import torch
    import transformers

    config = transformers.Qwen3Config(
        hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers, num_attention_heads=16,
        num_key_value_heads=8, head_dim=hidden // 16, vocab_size=151669, max_position_embeddings=2048,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config, dtype=torch.float32)
    model.save_pretrained(folder)
    for file in qwen_tokenizer_dir().iterdir():
        if file.is_file():
            shutil.copy(file, folder / file.name)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.0f}M parameters, {params * 4 / 2**20:.0f} MiB in float32")
    return str(folder)


def measure(model_path: str, tp_size: int) -> None:
    server = RunningServer(["--model-path", model_path, "--tp-size", str(tp_size)], startup_timeout=600)
    try:
        httpx.post(f"{server.base_url}/v1/embeddings", json={"input": ["hello world"] * 8}, timeout=120)
        schedulers = [p for p in server.children if p.name().startswith(("embedserve-tp", "embedserve-sche"))]
        for proc in sorted(schedulers, key=lambda p: p.name()):
            peak = _peak_rss_mib(proc.pid)
            print(f"tp={tp_size} {proc.name():16s} RSS {proc.memory_info().rss / 2**20:7.0f} MiB, peak {peak:7.0f} MiB")
    finally:
        server.stop()


def _peak_rss_mib(pid: int) -> float:
    """The process's high-water mark of resident memory (Linux VmHWM), loading included."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp) / "qwen3", args.hidden, args.layers)
        for tp_size in (1, 2):
            measure(path, tp_size)
    baseline = psutil.Process().memory_info().rss / 2**20
    print(f"(this script's own process, torch and transformers imported: {baseline:.0f} MiB)")


if __name__ == "__main__":
    main()
