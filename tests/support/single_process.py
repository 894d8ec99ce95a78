"""The single-process engine (one rank, in the test process) as the reference the parallel servers must equal."""

from __future__ import annotations

from functools import cache

import numpy as np

from tests.support.decoder_reference import engine_vectors


@cache
def _runner_and_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    from engine.model_config import ModelConfig
    from engine.model_runner import ModelRunner

    return ModelRunner(ModelConfig.load(model_path)), AutoTokenizer.from_pretrained(model_path)


def single_process_vectors(model_path: str, texts: list[str]) -> np.ndarray:
    """Normalized vectors of `texts` from one unsharded ModelRunner, tokenized as the server tokenizes them."""
    runner, tokenizer = _runner_and_tokenizer(model_path)
    return engine_vectors(runner, tokenizer(texts)["input_ids"])
