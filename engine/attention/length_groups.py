"""CPU attention over a packed batch in a few SDPA calls: one per group of sequences of the same rounded length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.attention.masks import band_mask, band_window

# torch's CPU flash attention runs whole blocks fast and a ragged last block slowly: each sequence is padded
# to a multiple of this (its extra keys masked), and sequences of the same padded length share one call
# (docs/benchmarks.md, "Attention in length groups"). A sequence's padded length depends on its own length
# only, so its result does not depend on what shares its batch.
LENGTH_MULTIPLE = 16


@dataclass
class LengthGroup:
    """Sequences padded to one length: `gather` picks each padded slot's token (pads repeat a real one)."""

    num_seqs: int
    length: int
    members: torch.Tensor  # (num_seqs,) int64: which sequences of the batch, in batch order
    gather: torch.Tensor  # (num_seqs * length,) int64 token rows
    key_mask: torch.Tensor | None  # (num_seqs, 1, 1, length) bool, True on real keys; None when none is padded


@dataclass
class GroupedBatch:
    groups: list[LengthGroup]
    scatter: torch.Tensor  # (num_tokens,) int64: each token's row in the groups' outputs, concatenated


def padded_length(length: int, multiple: int = LENGTH_MULTIPLE) -> int:
    return -(-length // multiple) * multiple


def group_by_length(seq_lens: list[int], device: torch.device, multiple: int = LENGTH_MULTIPLE) -> GroupedBatch:
    """Sequences grouped by their length rounded up to `multiple`, in batch order within each group."""
    lens = np.asarray(seq_lens, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    padded = -(-lens // multiple) * multiple
    scatter = np.empty(int(lens.sum()), dtype=np.int64)
    groups, offset = [], 0
    for length in np.unique(padded):
        members = np.flatnonzero(padded == length)
        slots = np.arange(length)
        real = slots[None, :] < lens[members][:, None]  # (num_seqs, length)
        # a padded slot reads its sequence's first token: any real row will do, its result is never kept
        gather = starts[members][:, None] + np.where(real, slots[None, :], 0)
        rows = offset + np.arange(len(members) * length).reshape(len(members), length)
        for seq, seq_rows, seq_real in zip(members, rows, real, strict=True):
            scatter[starts[seq] : starts[seq] + lens[seq]] = seq_rows[seq_real]
        key_mask = None if real.all() else torch.from_numpy(real).to(device).view(len(members), 1, 1, int(length))
        groups.append(
            LengthGroup(
                len(members),
                int(length),
                torch.from_numpy(members).to(device),
                torch.from_numpy(gather.ravel()).to(device),
                key_mask,
            )
        )
        offset += len(members) * int(length)
    return GroupedBatch(groups, torch.from_numpy(scatter).to(device))


def attend_in_groups(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    grouped: GroupedBatch,
    causal: bool,
    scale: float,
    window: tuple[int, int] | None,
) -> torch.Tensor:
    """One SDPA call per length group; see AttentionBackend.forward for the shapes."""
    num_tokens, num_heads, head_dim = q.shape
    gqa = k.shape[1] != num_heads
    window = band_window(window, causal)
    outputs = []
    for group in grouped.groups:
        qg, kg, vg = (_padded(t, group) for t in (q, k, v))
        # Pads come after every real token: a causal real query never sees one, so causal groups need no key mask.
        mask = None if causal else group.key_mask
        if window is not None and group.length > min(window) + 1:
            band = band_mask(group.length, window, q.device)
            mask = band if mask is None else mask & band
        o = F.scaled_dot_product_attention(
            qg, kg, vg, attn_mask=mask, is_causal=causal and mask is None, scale=scale, enable_gqa=gqa
        )
        outputs.append(o.transpose(1, 2).reshape(group.num_seqs * group.length, num_heads * head_dim))
    flat = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    return flat.index_select(0, grouped.scatter)


def attend_from_rows(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grouped: GroupedBatch, scale: float
) -> torch.Tensor:
    """One query per sequence over all its keys, group by group; see AttentionBackend.forward_rows for the shapes."""
    num_seqs, num_heads, head_dim = q.shape
    gqa = k.shape[1] != num_heads
    out = q.new_empty((num_seqs, num_heads * head_dim))
    for group in grouped.groups:
        qg = q.index_select(0, group.members).unsqueeze(2)  # (num_seqs, heads, 1, head_dim)
        # a group's pads are masked out of every query's keys (None when the group has none)
        o = F.scaled_dot_product_attention(
            qg, _padded(k, group), _padded(v, group), attn_mask=group.key_mask, scale=scale, enable_gqa=gqa
        )
        out.index_copy_(0, group.members, o.view(group.num_seqs, num_heads * head_dim))
    return out


def _padded(t: torch.Tensor, group: LengthGroup) -> torch.Tensor:
    """(num_tokens, heads, head_dim) -> (num_seqs, heads, length, head_dim) for the group's sequences."""
    return t.index_select(0, group.gather).view(group.num_seqs, group.length, *t.shape[1:]).transpose(1, 2)
