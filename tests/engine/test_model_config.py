"""What the server reads from a model folder: pooling, normalization, context length, Matryoshka."""

from __future__ import annotations

import pytest

from engine.model_config import ModelConfig, ModelConfigError
from engine.models.registry import UnsupportedModelError


def test_minilm_reads_sentence_transformers_files(minilm):
    cfg = ModelConfig.load(minilm)
    assert (cfg.pooling, cfg.normalize, cfg.context_length, cfg.embedding_dim) == ("mean", True, 256, 384)
    assert not cfg.is_matryoshka and cfg.dtype == "float32"


def test_cls_copy_pools_cls(bge_style_cls):
    assert ModelConfig.load(bge_style_cls).pooling == "cls"


def test_overrides_make_a_model_matryoshka(minilm):
    cfg = ModelConfig.load(minilm, {"matryoshka_dimensions": [256, 64, 128]})
    assert cfg.is_matryoshka and cfg.matryoshka_dimensions == (64, 128, 256)
    assert ModelConfig.load(minilm, {"is_matryoshka": True}).matryoshka_dimensions is None


def test_context_length_flag_overrides_and_is_bounded(minilm):
    assert ModelConfig.load(minilm, context_length=512).context_length == 512
    with pytest.raises(ModelConfigError, match="outside 1..512"):
        ModelConfig.load(minilm, context_length=513)


def test_bad_folders_fail_clearly(tmp_path, minilm):
    with pytest.raises(ModelConfigError, match="no config.json"):
        ModelConfig.load(str(tmp_path))
    (tmp_path / "config.json").write_text('{"architectures": ["GPT2Model"], "hidden_size": 4, "vocab_size": 4}')
    with pytest.raises(UnsupportedModelError, match="GPT2Model"):
        ModelConfig.load(str(tmp_path))
    with pytest.raises(ModelConfigError, match="matryoshka"):
        ModelConfig.load(minilm, {"matryoshka_dimensions": [1000]})


def test_decoders_pool_last_and_normalize_by_default(tiny_decoder, tiny_qwen3_embedding):
    cfg = ModelConfig.load(tiny_decoder("qwen3-causal-lm"))
    assert (cfg.architecture, cfg.pooling, cfg.normalize, cfg.context_length) == (
        "Qwen3ForCausalLM",
        "last",
        True,
        2048,
    )
    st = ModelConfig.load(tiny_qwen3_embedding)  # declares last-token pooling, Normalize, prompts, max_seq_length
    assert (st.pooling, st.normalize, st.context_length, st.embedding_dim) == ("last", True, 1024, 1536)
    assert set(st.st_info.prompts) == {"query", "document"}


def test_sliding_window_caps_the_context(tiny_decoder):
    path = tiny_decoder("mistral-base-sharded")
    assert ModelConfig.load(path, {"sliding_window": 512}).context_length == 512
    assert ModelConfig.load(path, {"sliding_window": None}).context_length == 2048
    # Qwen2/Qwen3 configs carry a window that is off unless use_sliding_window is set
    assert ModelConfig.load(path, {"sliding_window": 512, "use_sliding_window": False}).context_length == 2048
    with pytest.raises(ModelConfigError, match="outside 1..512"):
        ModelConfig.load(path, {"sliding_window": 512}, context_length=1024)
