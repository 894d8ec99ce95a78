"""Qwen2-VL's vision transformer: patch embedding, 2D rotary attention per frame, and the 2x2 patch merger."""

from __future__ import annotations

import torch
from torch import nn

from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.image_batch import attention_batch
from engine.layers.activation import activation_by_name
from engine.layers.mrope import apply_rotary, vision_rotary_cos_sin

# The ViT is small beside the language model: its layers are plain (replicated) linears.


class VisionConfig:
    """The vision_config fields we use, read from either the hub's or transformers 5's spelling."""

    def __init__(self, cfg: dict):
        self.embed_dim = int(cfg["embed_dim"])
        self.depth = int(cfg["depth"])
        self.num_heads = int(cfg["num_heads"])
        self.mlp_dim = int(self.embed_dim * cfg.get("mlp_ratio", 4))
        self.out_dim = int(cfg["hidden_size"])  # the language model's hidden size
        self.in_channels = int(cfg.get("in_channels", cfg.get("in_chans", 3)))
        self.patch_size = int(cfg.get("patch_size", cfg.get("spatial_patch_size", 14)))
        self.temporal_patch_size = int(cfg.get("temporal_patch_size", 2))
        self.merge_size = int(cfg.get("spatial_merge_size", 2))
        self.act = cfg.get("hidden_act", "quick_gelu")
        self.rope_theta = float((cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
        self.patch_dim = self.in_channels * self.temporal_patch_size * self.patch_size**2


class PatchEmbed(nn.Module):
    """The checkpoint's Conv3d with stride = kernel is one matmul over each flattened (C, T, P, P) patch."""

    def __init__(self, patch_dim: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(patch_dim, embed_dim, bias=False)
        self.proj.weight.weight_loader = self._load_conv_weight

    @staticmethod
    def _load_conv_weight(param: nn.Parameter, loaded: torch.Tensor) -> None:
        param.data.copy_(loaded.reshape(param.shape))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values)


class VisionAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, attn: AttentionBackend):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn = attn

    def forward(self, x: torch.Tensor, batch: ForwardBatch, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).view(-1, 3, self.num_heads, self.head_dim).unbind(1)  # each (N, heads, head_dim)
        # rotated in float32, as the reference does, then back to the model's dtype
        q = apply_rotary(q.float(), cos, sin).to(x.dtype)
        k = apply_rotary(k.float(), cos, sin).to(x.dtype)
        out = self.attn.forward(q, k, v, batch, causal=False, scale=self.head_dim**-0.5)
        return self.proj(out)


class VisionBlock(nn.Module):
    def __init__(self, cfg: VisionConfig, attn: AttentionBackend):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.attn = VisionAttention(cfg.embed_dim, cfg.num_heads, attn)
        self.mlp = nn.ModuleDict(
            {"fc1": nn.Linear(cfg.embed_dim, cfg.mlp_dim), "fc2": nn.Linear(cfg.mlp_dim, cfg.embed_dim)}
        )
        self.act = activation_by_name(cfg.act)

    def forward(self, x: torch.Tensor, batch: ForwardBatch, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), batch, cos, sin)
        return x + self.mlp["fc2"](self.act(self.mlp["fc1"](self.norm2(x))))


class PatchMerger(nn.Module):
    """Each merge_size x merge_size window of patches (contiguous in the input) -> one language-model token."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.window_dim = cfg.embed_dim * cfg.merge_size**2
        self.ln_q = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(self.window_dim, self.window_dim), nn.GELU(), nn.Linear(self.window_dim, cfg.out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_q(x).view(-1, self.window_dim))


class Qwen2VisionTransformer(nn.Module):
    def __init__(self, cfg: dict, attn: AttentionBackend):
        super().__init__()
        self.cfg = VisionConfig(cfg)
        self.patch_embed = PatchEmbed(self.cfg.patch_dim, self.cfg.embed_dim)
        self.blocks = nn.ModuleList(VisionBlock(self.cfg, attn) for _ in range(self.cfg.depth))
        self.merger = PatchMerger(self.cfg)
        self.attn = attn

    def forward(self, pixel_values: torch.Tensor, grids_thw: list[tuple[int, int, int]]) -> torch.Tensor:
        """pixel_values: (num_patches, patch_dim) of all images -> (num_patches / merge_size**2, out_dim)."""
        cfg = self.cfg
        x = self.patch_embed(pixel_values.to(self.patch_embed.proj.weight.dtype))
        # every frame attends only to itself
        frames = attention_batch([h * w for t, h, w in grids_thw for _ in range(t)], x.device)
        head_dim = cfg.embed_dim // cfg.num_heads
        cos, sin = vision_rotary_cos_sin(grids_thw, cfg.merge_size, head_dim, cfg.rope_theta, x.device)
        self.attn.prepare(frames)
        for block in self.blocks:
            x = block(x, frames, cos, sin)
        return self.merger(x)
