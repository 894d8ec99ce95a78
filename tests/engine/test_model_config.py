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
