"""A tiny EmbeddingGemma stand-in at a trained scale: a bidirectional Gemma3TextModel with local and global layers,
a Gemma tokenizer trained here, and the sentence-transformers files (mean pooling, two Dense, Normalize, prompts).

The window (8 in config.json: each token sees 4 on either side in a local layer) is far shorter than the test
texts, so a window ignored or misread changes the vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.support.encoder_models import randomize_at_trained_scale
from tests.support.texts import mixed_length_batch, varied_texts

HIDDEN_SIZE = 64
DENSE_SIZES = (128, 48)  # EmbeddingGemma: 768 -> 3072 -> 768; here the output differs from the hidden size
SLIDING_WINDOW = 8
GEMMA_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # ids 0-4, as Gemma's
# EmbeddingGemma's prompts (a subset of its config_sentence_transformers.json)
PROMPTS = {
    "query": "task: search result | query: ",
    "document": "title: none | text: ",
    "Classification": "task: classification | query: ",
}


def gemma_tokenizer(destination: Path):
    """A BPE with Gemma's normalizer and pre-tokenizer, trained in milliseconds, adding <bos> and <eos> as
    EmbeddingGemma's tokenizer does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizer

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.normalizer = normalizers.Replace(" ", "▁")
    core.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=GEMMA_SPECIAL_TOKENS)
    core.train_from_iterator(varied_texts(200) + mixed_length_batch(200) + list(PROMPTS.values()), trainer)
    trained = json.loads(core.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tokenizer = GemmaTokenizer(vocab=trained["vocab"], merges=merges, add_bos_token=True, add_eos_token=True)
    tokenizer.save_pretrained(destination)
    return tokenizer


def dense_module(in_features: int, out_features: int, seed: int, **options):
    from sentence_transformers.base.modules.dense import Dense

    dense = Dense(in_features, out_features, **options)
    randomize_at_trained_scale(dense, seed)
    return dense


def build_tiny_embeddinggemma(
    destination: Path, *, bidirectional: bool = True, with_dense: bool = True, seed: int = 4
) -> str:
    """Save the folder; `bidirectional=False` gives a causal Gemma3 (no sentence-transformers files)."""
    from torch import nn
    from transformers import Gemma3TextConfig, Gemma3TextModel

    destination.mkdir(parents=True, exist_ok=True)
    tokenizer = gemma_tokenizer(destination)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN_SIZE, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=48,
        max_position_embeddings=512, sliding_window=SLIDING_WINDOW,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
            "full_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
        use_bidirectional_attention=bidirectional, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Gemma3TextModel(config)
    randomize_at_trained_scale(model, seed)  # Gemma's norms scale by 1 + weight: weights near 0 are norms near 1
    model.save_pretrained(destination)
    if not bidirectional:
        return str(destination)
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    modules = [Transformer(str(destination), max_seq_length=256), Pooling(HIDDEN_SIZE, pooling_mode="mean")]
    if with_dense:
        inner, out = DENSE_SIZES
        modules += [
            dense_module(HIDDEN_SIZE, inner, seed + 1, bias=False, activation_function=nn.Identity()),
            dense_module(inner, out, seed + 2, bias=False, activation_function=nn.Identity()),
        ]
    model_st = SentenceTransformer(modules=[*modules, Normalize()], prompts=PROMPTS, device="cpu")
    model_st.save(str(destination))
    assert json.loads((destination / "config.json").read_text())["architectures"] == ["Gemma3TextModel"]
    return str(destination)
