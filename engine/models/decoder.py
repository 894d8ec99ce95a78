"""The decoder embedding model the Llama, Mistral, Qwen2 and Qwen3 families share; no LM head is built."""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.decoder_block import DecoderLayer, DecoderOptions
from engine.layers.norm import RMSNorm
from engine.layers.rope_config import read_rope_config
from engine.layers.rotary import RotaryEmbedding
from engine.layers.vocab_embedding import VocabParallelEmbedding
from engine.model_config import ModelConfig
from engine.weights import load_renamed_weights

# HF projection name -> (our fused parameter, shard id)
_FUSED = {
    "self_attn.q_proj": ("self_attn.qkv_proj", "q"),
    "self_attn.k_proj": ("self_attn.qkv_proj", "k"),
    "self_attn.v_proj": ("self_attn.qkv_proj", "v"),
    "mlp.gate_proj": ("mlp.gate_up_proj", 0),
    "mlp.up_proj": ("mlp.gate_up_proj", 1),
}
_LAYER_NAME = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")


class DecoderEmbeddingModel(nn.Module):
    """Returns final (normed) hidden states (num_tokens, hidden); last-token pooling happens outside the model."""

    causal = True

    @classmethod
    def options(cls, cfg: dict) -> DecoderOptions:
        """Each family overrides this with where its config puts biases and norms."""
        return DecoderOptions()

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__()
        cfg = config.hf
        options = self.options(cfg)
        self.embed_tokens = VocabParallelEmbedding(cfg["vocab_size"], cfg["hidden_size"])
        self.rotary = RotaryEmbedding(read_rope_config(cfg))
        self.layers = nn.ModuleList(
            DecoderLayer(cfg, options, self.rotary, attn) for _ in range(cfg["num_hidden_layers"])
        )
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        x = self.embed_tokens(batch.input_ids)
        for layer in self.layers:
            x = layer(x, batch)
        return self.norm(x)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        load_renamed_weights(self, iter(weights), map_decoder_weight_name)


def map_decoder_weight_name(hf_name: str) -> tuple[str, str | int | None] | None:
    """HF names with or without the `model.` prefix; the LM head and cached rotary tables are skipped."""
    name = hf_name.removeprefix("model.")
    if name.startswith("lm_head.") or name.endswith("rotary_emb.inv_freq"):
        return None
    match = _LAYER_NAME.match(name)
    if not match:
        return name, None
    index, module, kind = match.groups()
    ours, shard_id = _FUSED.get(module, (module, None))
    return f"layers.{index}.{ours}.{kind}", shard_id
