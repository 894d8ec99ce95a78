"""transformers' reference for decoder embedders: each text run alone, final token's hidden state, L2-normalized."""

from __future__ import annotations

import numpy as np
import torch


def transformers_last_token_vectors(model_path: str, token_ids: list[list[int]]) -> np.ndarray:
    """One unpadded forward per input, so the reference needs no mask or padding side to be right."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_path, dtype=torch.float32).eval()
    rows = []
    with torch.inference_mode():
        for ids in token_ids:
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state  # (1, L, hidden)
            rows.append(hidden[0, -1].numpy())
    vectors = np.stack(rows)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def engine_vectors(runner, token_ids: list[list[int]]) -> np.ndarray:
    """Our engine on one packed batch of all inputs, normalized as the result process does."""
    vectors = runner.embed([np.asarray(ids, dtype=np.int32) for ids in token_ids])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
