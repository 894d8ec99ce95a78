"""Qwen2-VL as an embedding model (GME): the ViT's merged patches replace the image tokens of a Qwen2 decoder
that runs on multimodal rotary positions; the final hidden states are pooled outside (last token)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.decoder_block import DecoderOptions, GatedMLP
from engine.layers.linear import QKVParallelLinear, RowParallelLinear
from engine.layers.mrope import MultimodalRotaryEmbedding, apply_rotary, mrope_positions
from engine.layers.norm import RMSNorm
from engine.model_config import ModelConfig
from engine.models.qwen2_vl_vision import Qwen2VisionTransformer
from engine.weights import load_renamed_weights


def text_config(hf: dict) -> dict:
    """Hub configs keep the language model's fields at the top; transformers 5 nests them in text_config."""
    return {**hf, **(hf.get("text_config") or {})}


def rope_settings(cfg: dict) -> tuple[float, list[int]]:
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = float(rope.get("rope_theta", cfg.get("rope_theta", 1000000.0)))
    return theta, list(rope.get("mrope_section", [16, 24, 24]))


class Qwen2Attention(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend):
        super().__init__()
        hidden, heads, kv_heads = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.head_dim = hidden // heads
        self.qkv_proj = QKVParallelLinear(hidden, self.head_dim, heads, kv_heads, bias=True)
        self.o_proj = RowParallelLinear(heads * self.head_dim, hidden, bias=False)
        self.attn = attn

    def forward(self, x: torch.Tensor, batch: ForwardBatch, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        p = self.qkv_proj
        q_size, kv_size = p.num_heads * self.head_dim, p.num_kv_heads * self.head_dim
        q, k, v = self.qkv_proj(x).split([q_size, kv_size, kv_size], dim=-1)
        q = apply_rotary(q.view(-1, p.num_heads, self.head_dim), cos, sin)
        k = apply_rotary(k.view(-1, p.num_kv_heads, self.head_dim), cos, sin)
        v = v.view(-1, p.num_kv_heads, self.head_dim)
        out = self.attn.forward(q, k, v, batch, causal=True, scale=self.head_dim**-0.5)
        return self.o_proj(out)


class Qwen2DecoderLayer(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend):
        super().__init__()
        eps = cfg.get("rms_norm_eps", 1e-6)
        self.input_layernorm = RMSNorm(cfg["hidden_size"], eps)
        self.self_attn = Qwen2Attention(cfg, attn)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], eps)
        self.mlp = GatedMLP(cfg, DecoderOptions(qkv_bias=True))

    def forward(self, x: torch.Tensor, batch: ForwardBatch, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), batch, cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen2LanguageModel(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Qwen2DecoderLayer(cfg, attn) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg.get("rms_norm_eps", 1e-6))

    def forward(self, x: torch.Tensor, batch: ForwardBatch, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, batch, cos, sin)
        return self.norm(x)


class Qwen2VLEmbeddingModel(nn.Module):
    """Returns final hidden states (num_tokens, hidden); pooling (last token for GME) happens outside the model."""

    causal = True

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__()
        cfg = text_config(config.hf)
        self.image_token_id = int(config.hf["image_token_id"])
        self.model = Qwen2LanguageModel(cfg, attn)
        self.visual = Qwen2VisionTransformer(config.hf["vision_config"], attn)
        self.merge_size = self.visual.cfg.merge_size
        theta, section = rope_settings(cfg)
        self.rotary = MultimodalRotaryEmbedding(cfg["hidden_size"] // cfg["num_attention_heads"], theta, section)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        x = self.model.embed_tokens(batch.input_ids)
        images = batch.images
        if images is None or not any(images.per_sequence):
            positions = batch.positions.expand(3, -1)  # text only: the three axes move together
        else:
            positions, image_mask = self._multimodal_layout(batch)
            present = [im for im in images.per_sequence if im is not None]
            pixels = torch.cat([im.pixel_values for im in present])
            features = self.visual(pixels, [im.grid_thw for im in present])
            x = x.index_put((image_mask,), features.to(x.dtype))
        cos, sin = self.rotary.cos_sin(positions, x.dtype)
        return self.model(x, batch, cos, sin)

    def _multimodal_layout(self, batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """M-RoPE positions (3, num_tokens) and the flat indices of image tokens, computed on the host."""
        positions, image_index = [], []
        offset = 0
        for ids, image in zip(batch.images.token_ids, batch.images.per_sequence, strict=True):
            if image is None:  # a text sequence: any image token in it stays an ordinary token, as in the reference
                positions.append(np.broadcast_to(np.arange(len(ids)), (3, len(ids))))
            else:
                positions.append(mrope_positions(ids, self.image_token_id, [image.grid_thw], self.merge_size))
                image_index.append(np.flatnonzero(ids == self.image_token_id) + offset)
            offset += len(ids)
        device = batch.input_ids.device
        return (
            torch.from_numpy(np.concatenate(positions, axis=1)).to(device),
            torch.from_numpy(np.concatenate(image_index)).to(device),
        )

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        load_renamed_weights(self, iter(weights), _map_name)


_STACKED = {
    "self_attn.q_proj": ("self_attn.qkv_proj", "q"),
    "self_attn.k_proj": ("self_attn.qkv_proj", "k"),
    "self_attn.v_proj": ("self_attn.qkv_proj", "v"),
    "mlp.gate_proj": ("mlp.gate_up_proj", 0),
    "mlp.up_proj": ("mlp.gate_up_proj", 1),
}


def _map_name(hf_name: str) -> tuple[str, str | int | None] | None:
    if hf_name.startswith("lm_head."):
        return None  # an embedding model has no use for the LM head
    # transformers 5 nests the parts under model.language_model / model.visual; hub checkpoints do not
    name = hf_name.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
    for theirs, (ours, shard_id) in _STACKED.items():
        if f".{theirs}." in name:
            return name.replace(theirs, ours), shard_id
    return name, None
