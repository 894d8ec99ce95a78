"""Qwen2-VL as an embedding model (GME): the ViT's merged patches replace the image tokens of a Qwen2 decoder
that runs on multimodal rotary positions; the final hidden states are pooled outside (last token)."""

from __future__ import annotations

import numpy as np
import torch

from engine.arch_config import Qwen2VLTextConfig, Qwen2VLVisionConfig
from engine.attention import AttentionBackend
from engine.forward_batch import ForwardBatch
from engine.layers.decoder_block import FUSED_DECODER_WEIGHTS, DecoderOptions, DecoderStack
from engine.layers.rotary import MultimodalRotaryEmbedding
from engine.model_config import ModelConfig
from engine.models.base import EmbeddingModel
from engine.models.qwen2_vl_vision import Qwen2VisionTransformer
from engine.weights import WeightNames


class Qwen2VLEmbeddingModel(EmbeddingModel):
    """Returns final hidden states (num_tokens, hidden); pooling (last token for GME) happens outside the model."""

    weight_names = WeightNames(
        skip=r"lm_head\..*",  # an embedding model has no use for the LM head
        fused=FUSED_DECODER_WEIGHTS,
        renames={
            r"^model\.language_model\.": "model.",  # transformers 5 nests the parts; hub checkpoints do not
            r"^model\.visual\.": "visual.",
            r"\.norm1\.": ".attention_norm.",
            r"\.norm2\.": ".mlp_norm.",
            r"\.attn\.qkv\.": ".self_attn.qkv_proj.",  # already fused in the checkpoint
            r"\.attn\.proj\.": ".self_attn.o_proj.",
        },
    )

    def __init__(self, config: ModelConfig, attn: AttentionBackend):
        super().__init__(config, attn)
        text, vision = config.text, config.vision
        assert isinstance(text, Qwen2VLTextConfig) and isinstance(vision, Qwen2VLVisionConfig)  # as the registry pairs
        self.image_token_id = vision.image_token_id
        self.merge_size = vision.spatial_merge_size
        rotary = MultimodalRotaryEmbedding(text.head_dim, text.rope)
        self.model = DecoderStack(text, DecoderOptions(qkv_bias=True), rotary, attn)  # Qwen2's biases
        self.visual = Qwen2VisionTransformer(vision, attn)

    def finishes_on_pooled_rows(self, pooling: str) -> bool:
        return self.model.finishes_on_pooled_rows(pooling)

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
        return self.model(x, batch, positions)

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


def mrope_positions(
    token_ids: np.ndarray, image_token_id: int, grids_thw: list[tuple[int, int, int]], merge_size: int
) -> np.ndarray:
    """(3, seq_len) int64 positions of one sequence.

    Text tokens count up on all three axes. Each run of image tokens lays out its (t, h, w) grid of merged patches
    from the position where the run starts; text resumes one past the grid's largest extent.
    """
    positions = np.empty((3, len(token_ids)), dtype=np.int64)
    is_image = token_ids == image_token_id
    # starts and ends of runs of image tokens
    edges = np.flatnonzero(np.diff(np.concatenate(([False], is_image, [False])).astype(np.int8)))
    runs = edges.reshape(-1, 2)
    if len(runs) != len(grids_thw):
        raise ValueError(f"{len(runs)} runs of image tokens but {len(grids_thw)} images")
    cursor = 0  # next token index
    next_position = 0
    for (start, end), (t, h, w) in zip(runs, grids_thw, strict=True):
        text_len = start - cursor
        positions[:, cursor:start] = np.arange(next_position, next_position + text_len)
        next_position += text_len
        grid_h, grid_w = h // merge_size, w // merge_size
        if end - start != t * grid_h * grid_w:
            raise ValueError(f"an image run of {end - start} tokens does not match its grid {t}x{grid_h}x{grid_w}")
        tt, hh, ww = np.meshgrid(np.arange(t), np.arange(grid_h), np.arange(grid_w), indexing="ij")
        positions[:, start:end] = np.stack([tt.ravel(), hh.ravel(), ww.ravel()]) + next_position
        next_position += max(t, grid_h, grid_w)
        cursor = end
    positions[:, cursor:] = np.arange(next_position, next_position + len(token_ids) - cursor)
    return positions
