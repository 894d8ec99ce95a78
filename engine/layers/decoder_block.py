"""The pre-norm decoder Llama, Mistral, Qwen2, Qwen3 and Qwen2-VL share: GQA attention with rotary, gated MLP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from engine.arch_config import DecoderConfig, TextConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.gate_up_linear import GateUpParallelLinear
from engine.layers.linear import QKVParallelLinear, RowParallelLinear
from engine.layers.norm import RMSNorm
from engine.layers.rotary import MultimodalRotaryEmbedding, RotaryEmbedding, apply_rotary
from engine.layers.vocab_embedding import VocabParallelEmbedding

# Checkpoint projections -> (our fused parameter, shard id): a `fused` table for engine.weights.WeightNames.
FUSED_DECODER_WEIGHTS: dict[str, tuple[str, str | int]] = {
    ".self_attn.q_proj.": (".self_attn.qkv_proj.", "q"),
    ".self_attn.k_proj.": (".self_attn.qkv_proj.", "k"),
    ".self_attn.v_proj.": (".self_attn.qkv_proj.", "v"),
    ".mlp.gate_proj.": (".mlp.gate_up_proj.", 0),
    ".mlp.up_proj.": (".mlp.gate_up_proj.", 1),
}


@dataclass(frozen=True)
class DecoderOptions:
    """Where the families differ beyond config.json's sizes; each family's model class fills it in."""

    qkv_bias: bool = False  # Qwen2: always; Llama/Qwen3: attention_bias
    o_bias: bool = False  # Llama/Qwen3: attention_bias; Qwen2: never
    qk_norm: bool = False  # Qwen3: RMSNorm over each head of q and k before rotary
    mlp_bias: bool = False  # Llama: mlp_bias
    causal: bool = True  # False: every token sees its whole sequence (EmbeddingGemma)
    norm: Callable[[int, float], nn.Module] = RMSNorm  # Gemma: GemmaRMSNorm


class DecoderAttention(nn.Module):
    """`window=(left, right)`: a local layer, where each token sees only that many positions on each side."""

    def __init__(
        self,
        text: DecoderConfig,
        options: DecoderOptions,
        attn: AttentionBackend,
        window: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.head_dim = text.head_dim
        self.qkv_proj = QKVParallelLinear(
            text.hidden_size, self.head_dim, text.num_heads, text.num_kv_heads, bias=options.qkv_bias
        )
        self.num_heads = self.qkv_proj.num_heads  # per rank
        self.num_kv_heads = self.qkv_proj.num_kv_heads  # per rank
        self.o_proj = RowParallelLinear(text.num_heads * self.head_dim, text.hidden_size, bias=options.o_bias)
        if options.qk_norm:
            self.q_norm = options.norm(self.head_dim, text.norm_eps)
            self.k_norm = options.norm(self.head_dim, text.norm_eps)
        self.qk_norm = options.qk_norm
        self.attn = attn
        self.causal = options.causal
        self.window = window
        self.scale = text.attention_scale

    def forward(
        self,
        x: torch.Tensor,
        batch: ForwardBatch,
        cos: torch.Tensor,
        sin: torch.Tensor,
        residual: torch.Tensor | None = None,
        pooled_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`residual`: added to the output inside the output projection (the layer's skip connection).

        `pooled_rows` (batch.pooled_rows, the last layer only): queries at those rows alone (every token's k and v
        still), so the output is (num_seqs, hidden); exact where `attends_from_rows` says so.
        """
        qkv = self.qkv_proj(x).view(-1, self.num_heads + 2 * self.num_kv_heads, self.head_dim)
        q, k, v = qkv.split([self.num_heads, self.num_kv_heads, self.num_kv_heads], dim=1)
        q_cos, q_sin = cos, sin
        if pooled_rows is not None:
            q, q_cos, q_sin = (t.index_select(0, pooled_rows) for t in (q, cos, sin))
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary(q, q_cos, q_sin), apply_rotary(k, cos, sin)
        if pooled_rows is not None:
            out = self.attn.forward_rows(q, k, v, batch, scale=self.scale)
        else:
            out = self.attn.forward(q, k, v, batch, causal=self.causal, scale=self.scale, window=self.window)
        return self.o_proj(out, residual)

    def attends_from_rows(self, pooling: str) -> bool:
        """Whether `pooled_rows` gives this layer's exact output at the pooled rows: one query per sequence seeing
        all of it, i.e. a global layer whose pooled token is the last one, or any token when bidirectional."""
        sees_all = pooling == "last" or (pooling == "cls" and not self.causal)
        return self.window is None and sees_all and self.attn.attends_from_rows


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)), with gate and up fused into one matmul (ModernBERT's Wi -> chunk -> Wo too)."""

    def __init__(self, text: TextConfig, options: DecoderOptions):
        super().__init__()
        hidden, inner = text.hidden_size, text.intermediate_size
        self.gate_up_proj = GateUpParallelLinear(hidden, inner, text.activation, bias=options.mlp_bias)
        self.down_proj = RowParallelLinear(inner, hidden, bias=options.mlp_bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """`residual`: added to the output inside the down projection (the layer's skip connection)."""
        return self.down_proj(self.gate_up_proj.gated(x), residual)


class DecoderLayer(nn.Module):
    def __init__(self, text: DecoderConfig, options: DecoderOptions, attn: AttentionBackend):
        super().__init__()
        self.input_layernorm = RMSNorm(text.hidden_size, text.norm_eps)
        self.self_attn = DecoderAttention(text, options, attn)
        self.post_attention_layernorm = RMSNorm(text.hidden_size, text.norm_eps)
        self.mlp = GatedMLP(text, options)

    def forward(
        self,
        x: torch.Tensor,
        batch: ForwardBatch,
        cos: torch.Tensor,
        sin: torch.Tensor,
        pooled_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`pooled_rows`: everything after attention for those rows alone -> (num_seqs, hidden)."""
        residual = x if pooled_rows is None else x.index_select(0, pooled_rows)
        x = self.self_attn(self.input_layernorm(x), batch, cos, sin, residual=residual, pooled_rows=pooled_rows)
        return self.mlp(self.post_attention_layernorm(x), residual=x)


class DecoderStack(nn.Module):
    """Token embeddings, the layers and the final norm; `rotary` (1D or M-RoPE) turns positions into angles."""

    def __init__(
        self,
        text: DecoderConfig,
        options: DecoderOptions,
        rotary: RotaryEmbedding | MultimodalRotaryEmbedding,
        attn: AttentionBackend,
    ):
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(text.vocab_size, text.hidden_size)
        self.rotary = rotary  # holds no weights
        self.layers = nn.ModuleList(DecoderLayer(text, options, attn) for _ in range(text.num_layers))
        self.norm = RMSNorm(text.hidden_size, text.norm_eps)

    def forward(self, x: torch.Tensor, batch: ForwardBatch, positions: torch.Tensor) -> torch.Tensor:
        """x: (num_tokens, hidden) input embeddings; positions as `rotary` takes them -> final normed hidden states."""
        cos, sin = self.rotary.cos_sin(positions, x.dtype)  # once per batch, shared by every layer
        for layer in self.layers[:-1]:
            x = layer(x, batch, cos, sin)
        # Only the pooled rows of the last layer's output are read: its projections after attention and its MLP,
        # most of its work, run on one row per sequence (batch.pooled_rows, set by the model runner).
        return self.norm(self.layers[-1](x, batch, cos, sin, pooled_rows=batch.pooled_rows))

    def finishes_on_pooled_rows(self, pooling: str) -> bool:
        """Whether forward() may return only batch.pooled_rows for this pooling (see DecoderAttention)."""
        return cast(DecoderLayer, self.layers[-1]).self_attn.attends_from_rows(pooling)
