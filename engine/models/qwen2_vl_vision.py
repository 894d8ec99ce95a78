"""Qwen2-VL's vision transformer: patch embedding, 2D rotary attention per frame, and the 2x2 patch merger."""

from __future__ import annotations

import torch
from torch import nn

from engine.arch_config import Qwen2VLVisionConfig
from engine.attention import AttentionBackend
from engine.image_batch import attention_batch
from engine.layers.encoder_block import PreNormEncoderLayer
from engine.layers.rotary import vision_rotary_cos_sin
from engine.weights import CheckpointTensor, LoadedTensor, ShardId, copy_weight, refuse_shard, set_weight_loader

_NORM_EPS = 1e-6  # fixed by the architecture, not read from config.json


class PatchEmbed(nn.Module):
    """The checkpoint's Conv3d with stride = kernel is one matmul over each flattened (C, T, P, P) patch."""

    def __init__(self, vision: Qwen2VLVisionConfig):
        super().__init__()
        patch_dim = vision.num_channels * vision.temporal_patch_size * vision.patch_size**2
        self.proj = nn.Linear(patch_dim, vision.hidden_size, bias=False)
        set_weight_loader(self.proj.weight, self._load_conv_weight)

    @staticmethod
    def _load_conv_weight(param: torch.Tensor, loaded: LoadedTensor, shard_id: ShardId | None = None) -> None:
        refuse_shard(shard_id)
        kernel = loaded.full() if isinstance(loaded, CheckpointTensor) else loaded
        copy_weight(param, kernel.reshape(param.shape))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values)


class PatchMerger(nn.Module):
    """Each merge_size x merge_size window of patches (contiguous in the input) -> one language-model token."""

    def __init__(self, vision: Qwen2VLVisionConfig):
        super().__init__()
        self.window_dim = vision.hidden_size * vision.spatial_merge_size**2
        self.ln_q = nn.LayerNorm(vision.hidden_size, eps=_NORM_EPS)
        self.mlp = nn.Sequential(
            nn.Linear(self.window_dim, self.window_dim), nn.GELU(), nn.Linear(self.window_dim, vision.out_hidden_size)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_q(x).view(-1, self.window_dim))


class Qwen2VisionTransformer(nn.Module):
    def __init__(self, vision: Qwen2VLVisionConfig, attn: AttentionBackend):
        super().__init__()
        self.vision = vision
        self.patch_embed = PatchEmbed(vision)
        self.blocks = nn.ModuleList(
            PreNormEncoderLayer(
                vision.hidden_size, vision.num_heads, vision.intermediate_size, vision.activation, _NORM_EPS, attn
            )
            for _ in range(vision.num_layers)
        )
        self.merger = PatchMerger(vision)
        self.attn = attn

    def forward(self, pixel_values: torch.Tensor, grids_thw: list[tuple[int, int, int]]) -> torch.Tensor:
        """pixel_values: (num_patches, patch_dim) of all images -> (num_patches / merge_size**2, out_hidden_size)."""
        vision = self.vision
        x = self.patch_embed(pixel_values.to(self.patch_embed.proj.weight.dtype))
        # every frame attends only to itself
        frames = attention_batch([h * w for t, h, w in grids_thw for _ in range(t)], x.device)
        rotary = vision_rotary_cos_sin(
            grids_thw, vision.spatial_merge_size, vision.head_dim, vision.rope.theta, x.device
        )
        self.attn.prepare(frames)
        for block in self.blocks:
            x = block(x, frames, rotary)
        return self.merger(x)
