"""Qwen3-Reranker in-process: a tied-embedding folder (as Qwen3-Reranker-0.6B) scores as the model card's recipe with
two rows of its LM head, and only the preset's overrides make a Qwen3ForCausalLM a reranker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoTokenizer

from engine.model_config import ModelConfig, ModelConfigError
from engine.model_runner import ModelRunner
from engine.weights import iterate_weights
from server.inputs.qwen3_reranker_pairs import Qwen3RerankerPairs
from tests.support.qwen3_reranker import RERANKER_OVERRIDES, CardReference, build_tiny_qwen3_reranker
from tests.support.texts import varied_texts

QUERY = "What is the capital of France?"
CONTEXT = 128


@pytest.fixture(scope="module")
def tied_folder(tmp_path_factory) -> str:
    return build_tiny_qwen3_reranker(tmp_path_factory.mktemp("models") / "tied", tie_word_embeddings=True, seed=1)


def test_a_tied_folder_scores_as_the_model_card_with_two_head_rows(tied_folder):
    with safe_open(f"{tied_folder}/model.safetensors", framework="pt") as checkpoint:
        assert "lm_head.weight" not in checkpoint.keys()  # noqa: SIM118 (the rows come from the embeddings)
    config = ModelConfig.load(tied_folder, RERANKER_OVERRIDES, CONTEXT)
    assert config.task == "score" and config.num_labels == 1 and config.score_activation == "sigmoid"
    runner = ModelRunner(config)
    assert tuple(runner.model.score_rows.shape) == (2, config.text.hidden_size)
    documents = [d for d in varied_texts(12, seed=2, long_words=20) if d.strip()]
    tokens = Qwen3RerankerPairs(AutoTokenizer.from_pretrained(tied_folder), CONTEXT).tokenize([QUERY], documents, True)
    bounds = np.concatenate(([0], np.cumsum(tokens.seq_lens)))
    log_odds = runner.embed([tokens.token_ids[bounds[i] : bounds[i + 1]] for i in range(len(documents))])[:, 0]
    expected = np.array(CardReference(tied_folder, CONTEXT).log_odds(QUERY, documents))
    assert np.ptp(expected) > 0.5, "different documents must get clearly different scores"
    np.testing.assert_allclose(log_odds, expected, atol=1e-4)
    # tensor-parallel ranks read tensors sliced from disk: the two rows come out the same
    sliced = ModelRunner(config, weights=iterate_weights(tied_folder, sliced=True))
    assert torch.equal(sliced.model.score_rows, runner.model.score_rows)


def test_only_the_overrides_make_a_causal_lm_a_reranker(tied_folder):
    assert ModelConfig.load(tied_folder).task == "embed"  # a Qwen3ForCausalLM folder stays a last-token embedder
    incomplete = {"architectures": ["Qwen3ForSequenceClassification"]}  # a trained score head: not served
    with pytest.raises(ModelConfigError, match="only as the original Qwen3-Reranker"):
        ModelConfig.load(tied_folder, incomplete)
    unknown = dict(RERANKER_OVERRIDES, classifier_from_token=["no", "maybe-not-a-token"])
    with pytest.raises(ModelConfigError, match="maybe-not-a-token"):
        ModelConfig.load(tied_folder, unknown)
