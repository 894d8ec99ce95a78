"""EmbeddingGemma's real shape (24 layers, 768 wide, head size 256, window 512, Dense 768 -> 3072 -> 768) at a
trained scale, with a tokenizer trained here instead of its 262,144-token vocabulary: the engine against
sentence-transformers on texts longer than the window, vectors and time (one packed batch against `encode`).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_embeddinggemma_shape.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.support.compare import cosine_per_row  # noqa: E402
from tests.support.encoder_models import randomize_at_trained_scale  # noqa: E402
from tests.support.gemma_models import PROMPTS, dense_module, gemma_tokenizer  # noqa: E402
from tests.support.texts import mixed_length_batch, varied_texts  # noqa: E402


def build(destination: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from torch import nn
    from transformers import Gemma3TextConfig, Gemma3TextModel

    tokenizer = gemma_tokenizer(destination)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=768, intermediate_size=1152, num_hidden_layers=24,
        num_attention_heads=3, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
        max_position_embeddings=2048, sliding_window=512, use_bidirectional_attention=True,
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 4,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Gemma3TextModel(config)
    randomize_at_trained_scale(model, 0)
    model.save_pretrained(destination)
    identity = nn.Identity()
    modules = [
        Transformer(str(destination), max_seq_length=2048),
        Pooling(768, pooling_mode="mean"),
        dense_module(768, 3072, 1, bias=False, activation_function=identity),
        dense_module(3072, 768, 2, bias=False, activation_function=identity),
        Normalize(),
    ]
    SentenceTransformer(modules=modules, prompts=PROMPTS, device="cpu").save(str(destination))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    from engine.model_config import ModelConfig
    from engine.model_runner import ModelRunner

    with tempfile.TemporaryDirectory() as folder:
        build(Path(folder))
        library = SentenceTransformer(folder, device="cpu")
        runner = ModelRunner(ModelConfig.load(folder))
        paragraphs = varied_texts(60, long_words=400)
        texts = [" ".join(paragraphs[i::7]) for i in range(3)] + mixed_length_batch(29, seed=2)
        ids = library.tokenizer(texts)["input_ids"]
        print(f"{len(texts)} texts of {min(map(len, ids))}-{max(map(len, ids))} tokens (window: 256 on each side)")
        arrays = [np.asarray(x, dtype=np.int32) for x in ids]
        library_s, engine_s = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same load
            started = time.perf_counter()
            expected = library.encode(texts, batch_size=len(texts))
            library_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            actual = runner.embed(arrays)
            engine_s.append(time.perf_counter() - started)
        print(f"min cosine {cosine_per_row(actual, expected).min():.9f}")
        print(f"sentence-transformers {np.median(library_s):.2f}s, engine {np.median(engine_s):.2f}s (medians)")


if __name__ == "__main__":
    main()
