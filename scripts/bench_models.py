"""The models bench_vs_vllm.py serves: all-MiniLM-L6-v2 and a random-weight Qwen3-Embedding-0.6B-shaped folder.

The decoder folder has Qwen3-Embedding-0.6B's config (Qwen3ForCausalLM, tied embeddings), the real Qwen
tokenizer made to append <|endoftext|> as Qwen3-Embedding's does, and its sentence-transformers files (last-token
pooling, Normalize). It is built once, in a child process (a few GB of float32 while it builds), and cached.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

DECODER_CACHE = Path(tempfile.gettempdir()) / "embedserve-bench" / "qwen3-embedding-0.6b-shape"


@dataclass(frozen=True)
class BenchModel:
    """A model both servers load, and what the benchmark needs to know about it."""

    key: str
    path: str
    truncate_tokens: int | None  # vLLM refuses longer inputs unless each request asks it to truncate
    vllm_kv_cache_gib: int  # vLLM's start-up check wants one max-length sequence to fit in its KV cache
    warmup_texts: int


def minilm() -> BenchModel:
    from server.launch.args import default_model_path

    return BenchModel("minilm", default_model_path(), truncate_tokens=256, vllm_kv_cache_gib=1, warmup_texts=256)


def qwen3_embedding_shape() -> BenchModel:
    """Built on first use; a 32,768-token sequence's KV cache in bfloat16 needs 3.5 GiB in vLLM."""
    if not (DECODER_CACHE / "complete").exists():
        child = multiprocessing.get_context("spawn").Process(target=_build_decoder, args=(DECODER_CACHE,))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"building the decoder folder in {DECODER_CACHE} failed")
    return BenchModel("decoder", str(DECODER_CACHE), truncate_tokens=None, vllm_kv_cache_gib=4, warmup_texts=32)


def _build_decoder(destination: Path) -> None:
    import torch
    from gpu_check import SHAPES
    from tokenizers import Tokenizer, processors

    from tests.support.decoder_models import build_tiny_decoder, write_pooling_modules

    shape = {key: value for key, value in SHAPES["qwen3-0.6b"].items() if key != "family"}
    extra = shape | {"tie_word_embeddings": True, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}
    build_tiny_decoder("qwen3", destination, causal_lm=True, save_dtype=torch.bfloat16, config_extra=extra)
    tokenizer = Tokenizer.from_file(str(destination / "tokenizer.json"))
    eot = tokenizer.token_to_id("<|endoftext|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", pair="$A <|endoftext|> $B:1 <|endoftext|>:1", special_tokens=[("<|endoftext|>", eot)]
    )
    tokenizer.save(str(destination / "tokenizer.json"))
    pooling = {"word_embedding_dimension": shape["hidden_size"], "pooling_mode_lasttoken": True, "include_prompt": True}
    write_pooling_modules(destination, pooling)
    (destination / "complete").touch()


def linear_flops_per_token(model_path: str) -> float:
    """FLOPs per token in the transformer's linear layers (2 per weight), as issue 18 counts MiniLM's 21.2 M.

    Attention's score and value products grow with the length and are left out, as are embeddings and pooling.
    """
    from engine.arch_config import DecoderConfig
    from engine.model_config import ModelConfig

    text = ModelConfig.load(model_path).text
    query_width, kv_width = text.num_heads * text.head_dim, text.num_kv_heads * text.head_dim
    attention = 2 * text.hidden_size * query_width + 2 * text.hidden_size * kv_width  # q and o, k and v
    mlp = (3 if isinstance(text, DecoderConfig) else 2) * text.hidden_size * text.intermediate_size
    return 2.0 * text.num_layers * (attention + mlp)
