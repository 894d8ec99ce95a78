"""The pre-norm decoder layer Llama, Mistral, Qwen2 and Qwen3 share: GQA attention with rotary, gated MLP."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.activation import activation_by_name
from engine.layers.linear import MergedColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from engine.layers.norm import RMSNorm
from engine.layers.rope_config import decoder_head_dim
from engine.layers.rotary import RotaryEmbedding


@dataclass(frozen=True)
class DecoderOptions:
    """Where the families differ, read from each family's config.json."""

    qkv_bias: bool = False  # Qwen2: always; Llama/Qwen3: attention_bias
    o_bias: bool = False  # Llama/Qwen3: attention_bias; Qwen2: never
    qk_norm: bool = False  # Qwen3: RMSNorm over each head of q and k before rotary
    mlp_bias: bool = False  # Llama: mlp_bias


class DecoderAttention(nn.Module):
    def __init__(self, cfg: dict, options: DecoderOptions, rotary: RotaryEmbedding, attn: AttentionBackend):
        super().__init__()
        hidden = cfg["hidden_size"]
        num_heads = cfg["num_attention_heads"]
        self.head_dim = decoder_head_dim(cfg)
        self.qkv_proj = QKVParallelLinear(
            hidden, self.head_dim, num_heads, cfg.get("num_key_value_heads") or num_heads, bias=options.qkv_bias
        )
        self.num_heads = self.qkv_proj.num_heads  # per rank
        self.num_kv_heads = self.qkv_proj.num_kv_heads  # per rank
        self.o_proj = RowParallelLinear(num_heads * self.head_dim, hidden, bias=options.o_bias)
        if options.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, cfg["rms_norm_eps"])
            self.k_norm = RMSNorm(self.head_dim, cfg["rms_norm_eps"])
        self.qk_norm = options.qk_norm
        self.rotary = rotary  # shared by every layer; holds no weights
        self.attn = attn
        self.scale = self.head_dim**-0.5

    def forward(self, x: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        qkv = self.qkv_proj(x).view(-1, self.num_heads + 2 * self.num_kv_heads, self.head_dim)
        q, k, v = qkv.split([self.num_heads, self.num_kv_heads, self.num_kv_heads], dim=1)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self.rotary(batch.positions, q, k)
        out = self.attn.forward(q, k, v, batch, causal=True, scale=self.scale)
        return self.o_proj(out)


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)), with gate and up fused into one matmul."""

    def __init__(self, cfg: dict, options: DecoderOptions):
        super().__init__()
        hidden, inner = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_up_proj = MergedColumnParallelLinear(hidden, [inner, inner], bias=options.mlp_bias)
        self.down_proj = RowParallelLinear(inner, hidden, bias=options.mlp_bias)
        self.act = activation_by_name(cfg.get("hidden_act", "silu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(self.act(gate) * up)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: dict, options: DecoderOptions, rotary: RotaryEmbedding, attn: AttentionBackend):
        super().__init__()
        eps = cfg["rms_norm_eps"]
        self.input_layernorm = RMSNorm(cfg["hidden_size"], eps)
        self.self_attn = DecoderAttention(cfg, options, rotary, attn)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], eps)
        self.mlp = GatedMLP(cfg, options)

    def forward(self, x: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), batch)
        return x + self.mlp(self.post_attention_layernorm(x))
