"""embedserve.Engine: the embedded default's vectors equal sentence-transformers', SGLang's encode shapes,
the Matryoshka rules, and a close() that leaves no process or thread behind."""

from __future__ import annotations

import json
import multiprocessing.resource_tracker
import threading

import numpy as np
import psutil
import pytest

from embedserve import Engine
from tests.support.compare import assert_close_vectors
from tests.support.texts import mixed_length_batch, varied_texts


def test_embed_equals_sentence_transformers_in_input_order(default_engine, minilm, st_model_factory):
    texts = varied_texts(300, long_words=40) + mixed_length_batch(16)  # two requests, long and short mixed
    vectors = default_engine.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
    expected = st_model_factory(minilm).encode(texts, convert_to_numpy=True)
    assert_close_vectors(vectors, expected)
    # in input order, whatever shared a batch: each row alone gives the same vector
    assert_close_vectors(default_engine.embed([texts[-1], texts[7]]), vectors[[-1, 7]])


def test_embed_takes_one_text_token_ids_and_any_sequence(default_engine):
    one = default_engine.embed("hello world")
    assert one.shape == (1, 384)
    as_ids = default_engine.embed([[101, 7592, 2088, 102]])  # [CLS] hello world [SEP] in MiniLM's vocabulary
    np.testing.assert_allclose(as_ids, one, atol=1e-6)
    from_tuple = default_engine.embed(("hello world", "another"))
    np.testing.assert_allclose(from_tuple[:1], one, atol=1e-6)
    assert default_engine.embed([]).shape == (0, 384)


def test_encode_answers_as_sglang_does(default_engine):
    single = default_engine.encode("hello world")
    assert set(single) == {"embedding", "meta_info"}
    assert len(single["embedding"]) == 384 and single["meta_info"]["prompt_tokens"] == 4
    batch = default_engine.encode(["hello world", "a second, longer prompt about rivers"])
    assert isinstance(batch, list) and len(batch) == 2
    np.testing.assert_allclose(batch[0]["embedding"], single["embedding"], atol=1e-6)
    assert batch[1]["meta_info"]["prompt_tokens"] > batch[0]["meta_info"]["prompt_tokens"]


def test_bad_inputs_raise_value_errors_with_the_servers_messages(default_engine):
    with pytest.raises(ValueError, match="does not support Matryoshka embeddings; omit dimensions"):
        default_engine.embed(["x"], dimensions=64)
    with pytest.raises(ValueError, match=r"input\[1\] is empty or only whitespace"):
        default_engine.embed(["fine", "  "])
    too_long = ["short"] * 300 + ["word " * 400]  # in the second chunk sent: named by its index in the call
    with pytest.raises(ValueError, match=r"input\[300\] has \d+ tokens, more than the model's context length of 256"):
        default_engine.embed(too_long)
    with pytest.raises(ValueError, match="prompt_name 'query' is not a prompt of this model"):
        default_engine.embed(["x"], prompt_name="query")


def _child_pids() -> set[int]:
    """This process's children, less multiprocessing's resource tracker: one per interpreter, shared by every
    spawn (not the engine's), which lives until the interpreter exits."""
    tracker = multiprocessing.resource_tracker._resource_tracker._pid
    return {p.pid for p in psutil.Process().children(recursive=True) if p.pid != tracker}


def test_matryoshka_engine_truncates_then_normalizes_and_close_leaves_nothing(minilm):
    threads_before, children_before = set(threading.enumerate()), _child_pids()  # the module's default engine's
    overrides = json.dumps({"matryoshka_dimensions": [64, 128]})
    with Engine(minilm, json_model_override_args=overrides, max_prefill_tokens=512) as engine:
        started = [psutil.Process(pid) for pid in _child_pids() - children_before]
        assert sorted(p.name() for p in started) == ["embedserve-resu", "embedserve-sche"]
        texts = varied_texts(20)
        full = engine.embed(texts)
        short = engine.embed(texts, dimensions=64)
        expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
        np.testing.assert_allclose(short, expected, atol=1e-6)
        assert engine.encode("rain", dimensions=128)["embedding"].__len__() == 128
        for size, message in ((100, r"allowed values: \[64, 128\]"), (0, "at least 1"), (385, "exceeds")):
            with pytest.raises(ValueError, match=message):
                engine.embed(texts, dimensions=size)
    assert _child_pids() == children_before
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started)
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(Exception, match="closed"):
        engine.embed(["after close"])


@pytest.mark.slow  # a variant of what a quicker test covers: `make test-slow`
def test_tensor_parallel_engine_equals_one_rank(default_engine):
    texts = varied_texts(24, long_words=60)
    with Engine(tp_size=2) as engine:
        split = engine.embed(texts)
    assert_close_vectors(split, default_engine.embed(texts))
