"""ModernBERT encoders (gte-modernbert, modernbert-embed): rotary positions, gated GELU, global and local attention."""

from __future__ import annotations

import torch
from torch import nn

from engine.arch_config import ModernBertConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.decoder_block import DecoderOptions, GatedMLP
from engine.layers.encoder_block import EncoderAttention
from engine.layers.rotary import RotaryEmbedding
from engine.layers.vocab_embedding import VocabParallelEmbedding
from engine.model_config import ModelConfig
from engine.models.base import EmbeddingModel
from engine.weights import WeightNames

GLOBAL = "full_attention"  # ModernBERT's layer types, as config.json's layer_types names them
LOCAL = "sliding_attention"


class ModernBertLayer(nn.Module):
    """Pre-norm: x + attention(norm(x)), then x + mlp(norm(x)); the first layer's attention input is not normed."""

    def __init__(self, text: ModernBertConfig, layer_type: str, first: bool, attn: AttentionBackend):
        super().__init__()
        # the embeddings end in a norm already, so transformers gives layer 0 no attention norm
        self.attn_norm: nn.Module = nn.Identity() if first else _layer_norm(text)
        self.layer_type = layer_type
        window = text.local_window if layer_type == LOCAL else None
        self.attn = EncoderAttention(text.hidden_size, text.num_heads, attn, bias=text.attention_bias, window=window)
        self.mlp_norm = _layer_norm(text)
        self.mlp = GatedMLP(text, DecoderOptions(mlp_bias=text.mlp_bias))

    def forward(
        self, x: torch.Tensor, batch: ForwardBatch, rotaries: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """`rotaries`: (cos, sin) per layer type; this layer rotates by its own type's."""
        x = self.attn(self.attn_norm(x), batch, rotaries[self.layer_type], residual=x)
        return self.mlp(self.mlp_norm(x), residual=x)


def _layer_norm(text: ModernBertConfig) -> nn.LayerNorm:
    return nn.LayerNorm(text.hidden_size, eps=text.norm_eps, bias=text.norm_bias)


class ModernBertEmbeddingModel(EmbeddingModel):
    """ModernBertModel: final hidden states (num_tokens, hidden); pooling from the folder happens outside."""

    weight_names = WeightNames(
        # ModernBertForMaskedLM nests the encoder under model. beside its prediction head and decoder
        skip=r"(head|decoder|classifier)\..*",
        renames={
            r"^model\.": "",
            r"\.attn\.Wqkv\.": ".attn.qkv_proj.",  # q, k and v already fused, in that order
            r"\.attn\.Wo\.": ".attn.o_proj.",
            r"\.mlp\.Wi\.": ".mlp.gate_up_proj.",  # the activated input, then the gate, already fused
            r"\.mlp\.Wo\.": ".mlp.down_proj.",
        },
    )

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        text = config.text
        assert isinstance(text, ModernBertConfig)  # the registry pairs ModernBERT with ModernBertConfig
        self.embeddings = ModernBertEmbeddings(text)
        self.layers = nn.ModuleList(
            ModernBertLayer(text, layer_type, i == 0, attn) for i, layer_type in enumerate(text.layer_types)
        )
        self.final_norm = _layer_norm(text)
        # global and local layers rotate by the same positions at different speeds; neither holds weights
        self.global_rotary = RotaryEmbedding(text.head_dim, text.global_rope)
        self.local_rotary = RotaryEmbedding(text.head_dim, text.local_rope)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        x = self.embeddings(batch)
        # cos/sin in the model dtype and q, k rotated in float32, as transformers does; once per batch per layer type
        rotary = {
            GLOBAL: self.global_rotary.cos_sin(batch.positions, x.dtype),
            LOCAL: self.local_rotary.cos_sin(batch.positions, x.dtype),
        }
        for layer in self.layers:
            x = layer(x, batch, rotary)
        return self.final_norm(x)


class ModernBertEmbeddings(nn.Module):
    """Token embeddings then a LayerNorm; positions enter only through the rotary."""

    def __init__(self, text: ModernBertConfig):
        super().__init__()
        self.tok_embeddings = VocabParallelEmbedding(text.vocab_size, text.hidden_size)
        self.norm = _layer_norm(text)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        return self.norm(self.tok_embeddings(batch.input_ids))
