"""EmbeddingGemma (a bidirectional Gemma3TextModel, mean pooling, two Dense, Normalize) against SentenceTransformer on
a tiny random-weight folder whose texts outrun the local layers' window; a causal Gemma3 against transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.model_config import ModelConfig, ModelConfigError
from engine.model_runner import ModelRunner
from tests.support.compare import assert_close_vectors, cosine_per_row
from tests.support.gemma_models import DENSE_SIZES, build_tiny_embeddinggemma
from tests.support.texts import mixed_length_batch, varied_texts

TEXTS = varied_texts(24, long_words=80)


@pytest.fixture(scope="module")
def runner(tiny_embeddinggemma) -> ModelRunner:
    return ModelRunner(ModelConfig.load(tiny_embeddinggemma))


def _embed(runner: ModelRunner, tokenizer, texts: list[str]) -> np.ndarray:
    vectors = runner.embed([np.asarray(x, dtype=np.int32) for x in tokenizer(texts)["input_ids"]])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_folder_reads_as_embeddinggemma(runner):
    config = runner.config
    assert (config.architecture, config.pooling, config.normalize) == ("Gemma3TextModel", "mean", True)
    # the local layers' window does not cap the context: it is the model's positions
    assert config.embedding_dim == DENSE_SIZES[-1] and config.context_length == 512
    assert sorted(config.st_info.prompts) == ["Classification", "document", "query"]


def test_vectors_equal_sentence_transformers(tiny_embeddinggemma, runner, st_model_factory):
    # prompts, which only prepend text, are compared through the server (tests/server/test_embeddinggemma.py)
    model = st_model_factory(tiny_embeddinggemma)
    lengths = [len(x) for x in model.tokenizer(TEXTS)["input_ids"]]
    window = runner.config.text.local_window
    assert max(lengths) > 4 * sum(window), "texts must be far longer than the local layers' window"
    assert min(lengths) <= window[0], "and some shorter than it"
    assert_close_vectors(_embed(runner, model.tokenizer, TEXTS), model.encode(TEXTS))


def test_the_fixture_is_sensitive_to_the_text_the_window_and_the_prompt(tiny_embeddinggemma, st_model_factory):
    model = st_model_factory(tiny_embeddinggemma)
    expected = model.encode(TEXTS)
    similarity = expected @ expected.T
    assert similarity[~np.eye(len(TEXTS), dtype=bool)].max() < 0.99, (
        "different texts must get clearly different vectors"
    )
    assert cosine_per_row(expected, model.encode(TEXTS, prompt_name="query")).max() < 0.999
    # local layers that ignore their window serve other vectors for texts longer than it
    unwindowed = ModelRunner(ModelConfig.load(tiny_embeddinggemma))
    for layer in unwindowed.model.model.layers:
        layer.self_attn.window = None
    long_texts = TEXTS[-6:]
    assert cosine_per_row(_embed(unwindowed, model.tokenizer, long_texts), model.encode(long_texts)).min() < 0.9999


def test_an_input_alone_equals_it_inside_a_mixed_batch(runner, st_model_factory, tiny_embeddinggemma):
    tokenizer = st_model_factory(tiny_embeddinggemma).tokenizer
    texts = mixed_length_batch(12, seed=4)
    batched = _embed(runner, tokenizer, texts)
    alone = np.concatenate([_embed(runner, tokenizer, [t]) for t in texts])
    reversed_batch = _embed(runner, tokenizer, texts[::-1])[::-1]
    assert_close_vectors(alone, batched)
    assert_close_vectors(reversed_batch, batched)


def test_bfloat16_stays_close_and_float16_is_refused(tiny_embeddinggemma, st_model_factory):
    model = st_model_factory(tiny_embeddinggemma)
    bf16 = ModelRunner(ModelConfig.load(tiny_embeddinggemma, dtype="bfloat16"))
    assert {p.dtype for p in bf16.dense.parameters()} == {torch.bfloat16}
    cos = cosine_per_row(_embed(bf16, model.tokenizer, TEXTS), model.encode(TEXTS))
    # Close, and really computed in bfloat16. On this tiny random model bfloat16's rounding alone moves the
    # lowest text's cosine between 0.9988 and 0.9990 with the kernels' summation order (length-grouped or
    # per-sequence attention: the same error against a float64 reference), so the bound sits at 0.998.
    assert cos.min() >= 0.998 and cos.min() < 0.999999, cos.min()
    with pytest.raises(ModelConfigError, match="does not run in float16"):
        ModelConfig.load(tiny_embeddinggemma, dtype="float16")


def test_a_causal_gemma3_equals_transformers(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    path = build_tiny_embeddinggemma(tmp_path / "causal-gemma3", bidirectional=False)
    ids = AutoTokenizer.from_pretrained(path)(TEXTS)["input_ids"]
    reference = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    with torch.inference_mode():
        expected = np.stack([reference(input_ids=torch.tensor([x])).last_hidden_state[0].mean(0).numpy() for x in ids])
    config = ModelConfig.load(path)
    assert config.pooling == "mean" and config.st_info.dense == ()
    actual = ModelRunner(config).embed([np.asarray(x, dtype=np.int32) for x in ids])
    assert_close_vectors(actual, expected)
