"""The attention and MLP blocks of encoder towers (BERT, ModernBERT, CLIP's text and vision towers, Qwen2-VL's ViT)."""

from __future__ import annotations

import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.activation import activation_by_name
from engine.layers.linear import ColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from engine.layers.rotary import apply_rotary


class EncoderAttention(nn.Module):
    """Fused q/k/v projection (one key/value head per query head), attention within each sequence, output projection."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        attn: AttentionBackend,
        causal: bool = False,
        bias: bool = True,
        window: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = QKVParallelLinear(hidden_size, self.head_dim, num_heads, num_heads, bias=bias)
        self.o_proj = RowParallelLinear(hidden_size, hidden_size, bias=bias)
        self.attn = attn
        self.causal = causal  # CLIP's text tower attends only to earlier tokens
        self.window = window  # ModernBERT's local layers: (left, right) tokens each one sees
        self.scale = self.head_dim**-0.5

    def forward(
        self,
        x: torch.Tensor,
        batch: ForwardBatch,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        residual: torch.Tensor | None = None,
        pooled_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (num_tokens, hidden); `rotary`: (cos, sin) when the tower rotates q and k (Qwen2-VL's ViT, ModernBERT);
        `residual`: added to the output inside the output projection (the layer's skip connection);
        `pooled_rows`: queries at those rows alone -> (num_seqs, hidden), exact where `attends_from_rows`."""
        heads = self.qkv_proj.num_heads
        q, k, v = self.qkv_proj(x).view(-1, 3 * heads, self.head_dim).split(heads, dim=1)  # each (N, heads, head_dim)
        if rotary is not None:  # rotated in float32, as the reference does, then back to the model's dtype
            q = apply_rotary(q.float(), *rotary).to(x.dtype)
            k = apply_rotary(k.float(), *rotary).to(x.dtype)
        if pooled_rows is not None:
            out = self.attn.forward_rows(q.index_select(0, pooled_rows), k, v, batch, scale=self.scale)
        else:
            out = self.attn.forward(q, k, v, batch, causal=self.causal, scale=self.scale, window=self.window)
        return self.o_proj(out, residual)

    def attends_from_rows(self) -> bool:
        """Whether `pooled_rows` is exact here: every token sees its whole sequence (no causal mask, no window)."""
        return not self.causal and self.window is None and self.attn.attends_from_rows


class EncoderMLP(nn.Module):
    """fc2(act(fc1(x))); the activation runs inside fc1's matmul where oneDNN can fuse it."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str):
        super().__init__()
        activation_by_name(activation)  # an unsupported name fails at load, not at the first request
        self.fc1 = ColumnParallelLinear(hidden_size, intermediate_size)
        self.fc2 = RowParallelLinear(intermediate_size, hidden_size)
        self.activation = activation

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """`residual`: added to the output inside fc2 (the layer's skip connection)."""
        return self.fc2(self.fc1(x, activation=self.activation), residual)


class PreNormEncoderLayer(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): CLIP's towers and Qwen2-VL's ViT."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        activation: str,
        norm_eps: float,
        attn: AttentionBackend,
        causal: bool = False,
    ):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_size, eps=norm_eps)
        self.self_attn = EncoderAttention(hidden_size, num_heads, attn, causal)
        self.mlp_norm = nn.LayerNorm(hidden_size, eps=norm_eps)
        self.mlp = EncoderMLP(hidden_size, intermediate_size, activation)

    def forward(
        self, x: torch.Tensor, batch: ForwardBatch, rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        x = self.self_attn(self.attention_norm(x), batch, rotary, residual=x)
        return self.mlp(self.mlp_norm(x), residual=x)
