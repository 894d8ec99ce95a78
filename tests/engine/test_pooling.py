"""Pooling by offsets equals pooling each sequence on its own."""

from __future__ import annotations

import pytest
import torch

from engine.pooling import pool_hidden_states


def test_pooling_methods_match_per_sequence_loops():
    torch.manual_seed(0)
    lens = [1, 4, 7, 2]
    hidden = torch.randn(sum(lens), 5)
    cu = torch.tensor([0, 1, 5, 12, 14], dtype=torch.int32)
    seqs = hidden.split(lens)
    torch.testing.assert_close(pool_hidden_states(hidden, cu, "cls"), torch.stack([s[0] for s in seqs]))
    torch.testing.assert_close(pool_hidden_states(hidden, cu, "last"), torch.stack([s[-1] for s in seqs]))
    torch.testing.assert_close(pool_hidden_states(hidden, cu, "mean"), torch.stack([s.mean(0) for s in seqs]))


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match="max"):
        pool_hidden_states(torch.zeros(2, 3), torch.tensor([0, 2]), "max")
