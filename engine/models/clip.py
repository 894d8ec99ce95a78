"""CLIP as an embedding model: a causal text tower pooled at EOS and a ViT pooled at CLS, each projected into one space.

A batch may hold texts and images; each kind runs through its own tower, so neither changes the other's vectors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.image_batch import attention_batch
from engine.layers.activation import activation_by_name
from engine.layers.linear import ColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from engine.model_config import ModelConfig
from engine.weights import load_renamed_weights

_LEGACY_EOS_ID = 2  # configs from before transformers PR #24773: pool at the highest id (the EOT token) instead


class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend, causal: bool):
        super().__init__()
        hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-5)
        self.head_dim = hidden // heads
        self.layer_norm1 = nn.LayerNorm(hidden, eps=eps)
        self.qkv_proj = QKVParallelLinear(hidden, self.head_dim, heads, heads)
        self.out_proj = RowParallelLinear(hidden, hidden)
        self.layer_norm2 = nn.LayerNorm(hidden, eps=eps)
        self.fc1 = ColumnParallelLinear(hidden, cfg["intermediate_size"])
        self.fc2 = RowParallelLinear(cfg["intermediate_size"], hidden)
        self.act = activation_by_name(cfg.get("hidden_act", "quick_gelu"))
        self.attn = attn
        self.causal = causal

    def forward(self, x: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        heads = self.qkv_proj.num_heads
        q, k, v = self.qkv_proj(self.layer_norm1(x)).view(-1, 3 * heads, self.head_dim).split(heads, dim=1)
        x = x + self.out_proj(self.attn.forward(q, k, v, batch, causal=self.causal, scale=self.head_dim**-0.5))
        return x + self.fc2(self.act(self.fc1(self.layer_norm2(x))))


class CLIPTextTower(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])
        self.layers = nn.ModuleList(CLIPEncoderLayer(cfg, attn, causal=True) for _ in range(cfg["num_hidden_layers"]))
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg.get("layer_norm_eps", 1e-5))
        self.eos_token_id = int(cfg.get("eos_token_id", _LEGACY_EOS_ID))

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        """-> (num_seqs, hidden): each sequence's final state at its EOS token."""
        x = self.token_embedding(batch.input_ids) + self.position_embedding(batch.positions)
        for layer in self.layers:
            x = layer(x, batch)
        x = self.final_layer_norm(x)
        return x[self._pool_index(batch)]

    def _pool_index(self, batch: ForwardBatch) -> torch.Tensor:
        """Flat index of each sequence's first EOS (first highest id for legacy configs); its start when none."""
        ids = batch.input_ids
        starts = batch.cu_seqlens[:-1].long()
        lengths = torch.tensor(batch.seq_lens, device=ids.device)
        seq_of_token = torch.repeat_interleave(torch.arange(batch.num_seqs, device=ids.device), lengths)
        if self.eos_token_id == _LEGACY_EOS_ID:
            target = torch.full((batch.num_seqs,), -1, dtype=ids.dtype, device=ids.device)
            target = target.scatter_reduce(0, seq_of_token, ids, "amax")[seq_of_token]
        else:
            target = torch.full_like(ids, self.eos_token_id)
        token_index = torch.arange(batch.num_tokens, device=ids.device)
        candidates = torch.where(ids == target, token_index, torch.full_like(token_index, batch.num_tokens))
        first = torch.full((batch.num_seqs,), batch.num_tokens, dtype=torch.long, device=ids.device)
        first = first.scatter_reduce(0, seq_of_token, candidates, "amin")
        return torch.where(first < batch.num_tokens, first, starts)


class CLIPVisionTower(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend):
        super().__init__()
        hidden, patch = cfg["hidden_size"], cfg["patch_size"]
        self.num_positions = (cfg["image_size"] // patch) ** 2 + 1
        self.class_embedding = nn.Parameter(torch.empty(hidden), requires_grad=False)
        self.patch_embedding = nn.Conv2d(cfg.get("num_channels", 3), hidden, patch, stride=patch, bias=False)
        self.position_embedding = nn.Embedding(self.num_positions, hidden)
        eps = cfg.get("layer_norm_eps", 1e-5)
        self.pre_layrnorm = nn.LayerNorm(hidden, eps=eps)  # sic: the checkpoint's spelling
        self.layers = nn.ModuleList(CLIPEncoderLayer(cfg, attn, causal=False) for _ in range(cfg["num_hidden_layers"]))
        self.post_layernorm = nn.LayerNorm(hidden, eps=eps)
        self.attn = attn

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(num_images, 3, H, W) -> (num_images, hidden): each image's CLS state after the final layer norm."""
        num_images = pixel_values.shape[0]
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(num_images, 1, -1)
        x = torch.cat([cls, patches], dim=1) + self.position_embedding.weight  # (num_images, num_positions, hidden)
        x = self.pre_layrnorm(x.reshape(num_images * self.num_positions, -1))
        batch = attention_batch([self.num_positions] * num_images, x.device)  # each image attends only to itself
        self.attn.prepare(batch)
        for layer in self.layers:
            x = layer(x, batch)
        return self.post_layernorm(x[batch.cu_seqlens[:-1].long()])


class CLIPEmbeddingModel(nn.Module):
    """Returns one projected vector per input: text features for token sequences, image features for images."""

    pools_itself = True

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__()
        hf = config.hf
        text_cfg, vision_cfg = hf["text_config"], hf["vision_config"]
        self.text_model = CLIPTextTower(text_cfg, attn)
        self.vision_model = CLIPVisionTower(vision_cfg, attn)
        self.text_projection = nn.Linear(text_cfg["hidden_size"], config.embedding_dim, bias=False)
        self.visual_projection = nn.Linear(vision_cfg["hidden_size"], config.embedding_dim, bias=False)
        self.attn = attn

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        images = batch.images
        if images is None:  # texts only: the batch as packed
            return self.text_projection(self.text_model(batch))
        out = torch.empty((batch.num_seqs, self.text_projection.out_features), device=batch.input_ids.device)
        image_rows = [i for i, im in enumerate(images.per_sequence) if im is not None]
        text_rows = [i for i, im in enumerate(images.per_sequence) if im is None]
        if image_rows:
            pixels = torch.stack([images.per_sequence[i].pixel_values for i in image_rows])
            out[image_rows] = self.visual_projection(self.vision_model(pixels)).to(out.dtype)
        if text_rows:
            texts = ForwardBatch.from_sequences([images.token_ids[i] for i in text_rows], out.device)
            self.attn.prepare(texts)
            out[text_rows] = self.text_projection(self.text_model(texts)).to(out.dtype)
        return out

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        load_renamed_weights(self, iter(weights), _map_name)


_LAYER = re.compile(r"^(text_model|vision_model)\.encoder\.layers\.(\d+)\.(.+)$")
_LAYER_RENAMES = {
    "self_attn.q_proj": ("qkv_proj", "q"),
    "self_attn.k_proj": ("qkv_proj", "k"),
    "self_attn.v_proj": ("qkv_proj", "v"),
    "self_attn.out_proj": ("out_proj", None),
    "mlp.fc1": ("fc1", None),
    "mlp.fc2": ("fc2", None),
}


def _map_name(hf_name: str) -> tuple[str, str | None] | None:
    if hf_name == "logit_scale" or hf_name.endswith("position_ids"):
        return None  # the contrastive temperature and position buffers play no part in the features
    name = hf_name.replace(".embeddings.", ".")
    match = _LAYER.match(name)
    if not match:
        return name, None
    tower, index, rest = match.groups()
    module, kind = rest.rsplit(".", 1)
    ours, shard_id = _LAYER_RENAMES.get(module, (module, None))
    return f"{tower}.layers.{index}.{ours}.{kind}", shard_id
