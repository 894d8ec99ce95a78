"""The soak's answer check: the float32 bound unless the server runs in bfloat16, and the lowest cosine kept."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from scripts.soak import MIN_COSINE, MIN_COSINE_BFLOAT16, AnswerCheck, min_cosine_for


@pytest.mark.parametrize(
    ("server_args", "bound"),
    [
        ([], MIN_COSINE),
        (["--dtype", "float32"], MIN_COSINE),
        (["--dtype", "bfloat16"], MIN_COSINE_BFLOAT16),
        (["--dtype=bfloat16", "--max-queued-requests=8"], MIN_COSINE_BFLOAT16),
        (["--dtype"], MIN_COSINE),  # a flag without its value: the server refuses it, the bound stays strict
    ],
)
def test_the_bound_follows_the_servers_dtype(server_args, bound):
    assert min_cosine_for(server_args) == bound


def test_an_answer_is_right_within_the_bound_and_the_lowest_cosine_is_kept():
    reference = np.random.default_rng(0).standard_normal((2, 384))
    close = reference + 1e-3 * np.random.default_rng(1).standard_normal((2, 384))  # cosine about 0.999999
    off = reference + 0.05 * np.random.default_rng(2).standard_normal((2, 384))  # cosine about 0.9988
    check = AnswerCheck(MIN_COSINE)
    as_float = {"data": [{"index": i, "embedding": row.tolist()} for i, row in enumerate(close)]}
    as_base64 = {
        "data": [
            {"index": i, "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode()}
            for i, row in enumerate(off)
        ]
    }
    assert check.is_right(as_float, reference)
    assert check.lowest is not None and check.lowest > MIN_COSINE
    assert not check.is_right(as_base64, reference)
    assert check.lowest < 0.999
    assert not check.is_right({"data": [{"index": 0, "embedding": close[0].tolist()}]}, reference)  # one vector short
    assert check.lowest == -1.0
