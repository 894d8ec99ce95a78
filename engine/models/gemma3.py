"""Gemma3's text stack (EmbeddingGemma): scaled embeddings, norms around attention and MLP, local and global layers.

Local layers attend within a window and rotate with their own theta; with `use_bidirectional_attention` every
layer sees both sides. Mean pooling and the sentence-transformers Dense modules happen outside the model.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.arch_config import Gemma3TextConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.decoder_block import DecoderAttention, DecoderOptions, GatedMLP
from engine.layers.norm import GemmaRMSNorm
from engine.layers.rotary import RotaryEmbedding
from engine.layers.vocab_embedding import VocabParallelEmbedding
from engine.model_config import ModelConfig
from engine.models.base import EmbeddingModel
from engine.models.decoder import DecoderEmbeddingModel


class Gemma3Layer(nn.Module):
    """x + post_norm(attention(pre_norm(x))), then the same around the gated MLP."""

    def __init__(self, text: Gemma3TextConfig, options: DecoderOptions, attn: AttentionBackend, local: bool):
        super().__init__()
        self.local = local
        self.input_layernorm = GemmaRMSNorm(text.hidden_size, text.norm_eps)
        self.self_attn = DecoderAttention(text, options, attn, window=text.local_window if local else None)
        self.post_attention_layernorm = GemmaRMSNorm(text.hidden_size, text.norm_eps)
        self.pre_feedforward_layernorm = GemmaRMSNorm(text.hidden_size, text.norm_eps)
        self.mlp = GatedMLP(text, options)
        self.post_feedforward_layernorm = GemmaRMSNorm(text.hidden_size, text.norm_eps)

    def forward(self, x: torch.Tensor, batch: ForwardBatch, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), batch, cos, sin))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class Gemma3Stack(nn.Module):
    def __init__(self, text: Gemma3TextConfig, attn: AttentionBackend):
        super().__init__()
        options = DecoderOptions(
            qkv_bias=text.attention_bias,
            o_bias=text.attention_bias,
            qk_norm=True,
            causal=not text.use_bidirectional_attention,
            norm=GemmaRMSNorm,
        )
        self.embed_tokens = VocabParallelEmbedding(text.vocab_size, text.hidden_size)
        self.embed_scale = text.hidden_size**0.5
        self.global_rotary = RotaryEmbedding(text.head_dim, text.rope)
        self.local_rotary = RotaryEmbedding(text.head_dim, text.local_rope)
        self.layers = nn.ModuleList(
            Gemma3Layer(text, options, attn, local=kind == "sliding_attention") for kind in text.layer_types
        )
        self.norm = GemmaRMSNorm(text.hidden_size, text.norm_eps)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        """-> final normed hidden states (num_tokens, hidden)."""
        x = self.embed_tokens(batch.input_ids)
        # as transformers: the scale as a float32 tensor, rounded to the model dtype (sqrt(768) is 27.75 in bfloat16)
        x = x * torch.tensor(self.embed_scale, dtype=torch.float32).to(x.dtype)
        global_cos_sin = self.global_rotary.cos_sin(batch.positions, x.dtype)  # once per batch for every layer
        local_cos_sin = self.local_rotary.cos_sin(batch.positions, x.dtype)
        for layer in self.layers:
            x = layer(x, batch, *(local_cos_sin if layer.local else global_cos_sin))
        return self.norm(x)


class Gemma3EmbeddingModel(EmbeddingModel):
    """Gemma3TextModel and Gemma3ForCausalLM checkpoints; the LM head (tied to the embeddings) is never built."""

    weight_names = DecoderEmbeddingModel.weight_names

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        text = config.text
        assert isinstance(text, Gemma3TextConfig)  # the registry pairs this family with Gemma3TextConfig
        self.model = Gemma3Stack(text, attn)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        return self.model(batch)
