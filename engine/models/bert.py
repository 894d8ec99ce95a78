"""BERT encoders (all-MiniLM, BGE, ...) over packed ragged batches with bidirectional attention."""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.activation import activation_by_name
from engine.layers.linear import ColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from engine.layers.vocab_embedding import VocabParallelEmbedding
from engine.model_config import ModelConfig
from engine.weights import load_renamed_weights


class BertSelfAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, eps: float, attn: AttentionBackend):
        super().__init__()
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = QKVParallelLinear(hidden_size, self.head_dim, num_heads, num_heads)
        self.o_proj = RowParallelLinear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.attn = attn
        self.scale = self.head_dim**-0.5

    def forward(self, x: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        heads = self.qkv_proj.num_heads
        q, k, v = self.qkv_proj(x).view(-1, 3 * heads, self.head_dim).split(heads, dim=1)
        out = self.attn.forward(q, k, v, batch, causal=False, scale=self.scale)
        return self.norm(x + self.o_proj(out))


class BertLayer(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend):
        super().__init__()
        hidden, eps = cfg["hidden_size"], cfg.get("layer_norm_eps", 1e-12)
        self.attention = BertSelfAttention(hidden, cfg["num_attention_heads"], eps, attn)
        self.up_proj = ColumnParallelLinear(hidden, cfg["intermediate_size"])
        self.activation = cfg.get("hidden_act", "gelu")
        activation_by_name(self.activation)  # an unsupported name fails at load, not at the first request
        self.down_proj = RowParallelLinear(cfg["intermediate_size"], hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        x = self.attention(x, batch)
        return self.norm(x + self.down_proj(self.up_proj(x, activation=self.activation)))


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        hidden = cfg["hidden_size"]
        self.word_embeddings = VocabParallelEmbedding(cfg["vocab_size"], hidden)
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(cfg.get("type_vocab_size", 2), hidden)
        self.norm = nn.LayerNorm(hidden, eps=cfg.get("layer_norm_eps", 1e-12))

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        # Single-segment inputs: every token has token type 0.
        x = self.word_embeddings(batch.input_ids) + self.position_embeddings(batch.positions)
        return self.norm(x + self.token_type_embeddings.weight[0])


# HF parameter name (after "encoder.layer.N.") -> (our name, shard id for fused parameters)
_LAYER_RENAMES = {
    "attention.self.query": ("attention.qkv_proj", "q"),
    "attention.self.key": ("attention.qkv_proj", "k"),
    "attention.self.value": ("attention.qkv_proj", "v"),
    "attention.output.dense": ("attention.o_proj", None),
    "attention.output.LayerNorm": ("attention.norm", None),
    "intermediate.dense": ("up_proj", None),
    "output.dense": ("down_proj", None),
    "output.LayerNorm": ("norm", None),
}
_LAYER_NAME = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")
_SKIPPED_PREFIXES = ("pooler.", "cls.", "classifier.", "lm_head.")


class BertEmbeddingModel(nn.Module):
    """Returns final hidden states (num_tokens, hidden); pooling happens outside the model."""

    causal = False

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__()
        cfg = config.hf
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertLayer(cfg, attn) for _ in range(cfg["num_hidden_layers"]))

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        x = self.embeddings(batch)
        for layer in self.layers:
            x = layer(x, batch)
        return x

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        load_renamed_weights(self, iter(weights), _map_name)


def _map_name(hf_name: str) -> tuple[str, str | None] | None:
    name = hf_name.removeprefix("bert.")
    if name.startswith(_SKIPPED_PREFIXES) or name.endswith("position_ids"):
        return None
    name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    name = name.replace("embeddings.LayerNorm", "embeddings.norm")
    match = _LAYER_NAME.match(name)
    if not match:
        return name, None
    index, module, kind = match.groups()
    kind = {"gamma": "weight", "beta": "bias"}.get(kind, kind)
    ours, shard_id = _LAYER_RENAMES.get(module, (module, None))
    return f"layers.{index}.{ours}.{kind}", shard_id
