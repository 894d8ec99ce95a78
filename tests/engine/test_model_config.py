"""What the server reads from a model folder: pooling, normalization, context length, Matryoshka."""

from __future__ import annotations

import json

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


def _classifier_folder(path, architecture: str, **extra) -> str:
    config = {
        "architectures": [architecture], "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 514, "id2label": {"0": "LABEL_0"},
        **extra,
    }  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def test_cross_encoders_score_with_the_activation_sentence_transformers_uses(tmp_path):
    folder = _classifier_folder(tmp_path, "XLMRobertaForSequenceClassification", pad_token_id=1)
    cfg = ModelConfig.load(folder)
    # RoBERTa's positions start after the padding index: 514 positions hold 512 tokens
    assert (cfg.task, cfg.num_labels, cfg.score_activation, cfg.context_length) == ("score", 1, "sigmoid", 512)
    identity = {"activation_fn": "torch.nn.modules.linear.Identity"}
    assert ModelConfig.load(folder, {"sentence_transformers": identity}).score_activation == "identity"
    old_key = {"sbert_ce_default_activation_function": "torch.nn.modules.linear.Identity"}
    assert ModelConfig.load(folder, old_key).score_activation == "identity"
    # config_sentence_transformers.json (sentence-transformers 6) wins over config.json, as in CrossEncoder
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps(identity))
    assert ModelConfig.load(folder, {"sentence_transformers": {"activation_fn": "x"}}).score_activation == "identity"
    (tmp_path / "config_sentence_transformers.json").write_text('{"activation_fn": "torch.nn.modules.activation.Tanh"}')
    with pytest.raises(ModelConfigError, match="activation 'torch.nn.modules.activation.Tanh' is not implemented"):
        ModelConfig.load(folder)


def test_a_classifier_with_several_labels_is_not_served(tmp_path):
    folder = _classifier_folder(tmp_path, "BertForSequenceClassification", id2label={"0": "no", "1": "yes"})
    with pytest.raises(ModelConfigError, match="2 labels is a classifier"):
        ModelConfig.load(folder)
    assert ModelConfig.load(folder, {"num_labels": 1}).task == "score"


def test_a_module_the_engine_does_not_implement_is_refused_by_name(tmp_path):
    folder = _classifier_folder(tmp_path, "BertModel")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    with pytest.raises(ModelConfigError, match=r"'sentence_transformers\.models\.LayerNorm' \(at '2_LayerNorm'\)"):
        ModelConfig.load(folder)
    # sentence-transformers 6 spells the same modules by their new paths; Dropout does nothing at inference
    modules[2]["type"] = "sentence_transformers.sentence_transformer.modules.dropout.Dropout"
    modules[3]["type"] = "sentence_transformers.base.modules.normalize.Normalize"
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    assert ModelConfig.load(folder).normalize
