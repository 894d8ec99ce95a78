"""CLIP as an embedding model: a causal text tower pooled at EOS and a ViT pooled at CLS, each projected into one space.

A batch may hold texts and images; each kind runs through its own tower, so neither changes the other's vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.arch_config import ClipTextConfig, ClipVisionConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.image_batch import attention_batch
from engine.layers.encoder_block import PreNormEncoderLayer
from engine.model_config import ModelConfig
from engine.models.base import EmbeddingModel
from engine.weights import WeightNames

_LEGACY_EOS_ID = 2  # configs from before transformers PR #24773: pool at the highest id (the EOT token) instead


class CLIPTextTower(nn.Module):
    def __init__(self, text: ClipTextConfig, attn: AttentionBackend):
        super().__init__()
        hidden = text.hidden_size
        self.token_embedding = nn.Embedding(text.vocab_size, hidden)
        self.position_embedding = nn.Embedding(text.max_position_embeddings, hidden)
        self.layers = nn.ModuleList(
            PreNormEncoderLayer(
                hidden, text.num_heads, text.intermediate_size, text.activation, text.norm_eps, attn, causal=True
            )
            for _ in range(text.num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(hidden, eps=text.norm_eps)
        self.eos_token_id = text.eos_token_id

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
    def __init__(self, vision: ClipVisionConfig, attn: AttentionBackend):
        super().__init__()
        hidden, patch = vision.hidden_size, vision.patch_size
        self.num_positions = vision.tokens_per_image
        self.class_embedding = nn.Parameter(torch.empty(hidden), requires_grad=False)
        self.patch_embedding = nn.Conv2d(vision.num_channels, hidden, patch, stride=patch, bias=False)
        self.position_embedding = nn.Embedding(self.num_positions, hidden)
        self.pre_layrnorm = nn.LayerNorm(hidden, eps=vision.norm_eps)  # sic: the checkpoint's spelling
        self.layers = nn.ModuleList(
            PreNormEncoderLayer(
                hidden, vision.num_heads, vision.intermediate_size, vision.activation, vision.norm_eps, attn
            )
            for _ in range(vision.num_layers)
        )
        self.post_layernorm = nn.LayerNorm(hidden, eps=vision.norm_eps)
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


class CLIPEmbeddingModel(EmbeddingModel):
    """Returns one projected vector per input: text features for token sequences, image features for images."""

    pools_itself = True
    weight_names = WeightNames(
        skip=r"logit_scale|.*position_ids",  # the contrastive temperature and position buffers play no part
        fused={
            ".self_attn.q_proj.": (".self_attn.qkv_proj.", "q"),
            ".self_attn.k_proj.": (".self_attn.qkv_proj.", "k"),
            ".self_attn.v_proj.": (".self_attn.qkv_proj.", "v"),
        },
        renames={
            r"\.embeddings\.": ".",
            r"\.encoder\.layers\.": ".layers.",
            r"\.layer_norm1\.": ".attention_norm.",
            r"\.layer_norm2\.": ".mlp_norm.",
            r"\.self_attn\.out_proj\.": ".self_attn.o_proj.",
        },
    )

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        text, vision = config.text, config.vision
        assert isinstance(text, ClipTextConfig) and isinstance(vision, ClipVisionConfig)  # as the registry pairs them
        self.text_model = CLIPTextTower(text, attn)
        self.vision_model = CLIPVisionTower(vision, attn)
        self.text_projection = nn.Linear(text.hidden_size, config.embedding_dim, bias=False)
        self.visual_projection = nn.Linear(vision.hidden_size, config.embedding_dim, bias=False)
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
