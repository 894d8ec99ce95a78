"""config.json into typed structs: both rotary spellings, each family's defaults, both vision-tower spellings."""

from __future__ import annotations

import json
import pickle

import msgspec
import pytest

from engine.arch_config import (
    ArchConfigError,
    BertConfig,
    ClipVisionConfig,
    DecoderConfig,
    Gemma3TextConfig,
    ModernBertConfig,
    Qwen2VLTextConfig,
    Qwen2VLVisionConfig,
    RopeConfig,
)
from engine.model_config import ModelConfig, ModelConfigError, resolve_dtype

_DECODER = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 100,
    "max_position_embeddings": 2048,
}
_LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 512}
# Qwen2-VL-2B (GME) as the hub spells it: text fields at the top, transformers 4's vision names
_GME_HUB = {
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "sliding_window": 32768,
    "use_sliding_window": False,
    "image_token_id": 151655,
    "vision_config": {
        "depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3, "hidden_size": 1536,
        "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2,
    },
}  # fmt: skip
# the same model as transformers 5 saves it: text fields nested, new names
_GME_V5 = {
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "image_token_id": 151655,
    "text_config": {
        **{k: _GME_HUB[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")},
        **{k: _GME_HUB[k] for k in ("num_key_value_heads", "vocab_size", "max_position_embeddings", "rms_norm_eps")},
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        "sliding_window": None,
        "use_sliding_window": False,
    },
    "vision_config": {
        "depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_channels": 3, "hidden_size": 1536,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "hidden_act": "quick_gelu",
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "axial"},
    },
}  # fmt: skip


def _fields(obj, *names: str) -> tuple:
    return tuple(getattr(obj, name) for name in names)


def _load(tmp_path, config: dict) -> ModelConfig:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return ModelConfig.load(str(tmp_path))


def test_both_rope_spellings_read_the_same():
    old = DecoderConfig.from_hf({**_DECODER, "rope_theta": 5e5, "rope_scaling": {"type": "llama3", **_LLAMA3}})
    new = DecoderConfig.from_hf({**_DECODER, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, **_LLAMA3}})
    assert old == new
    assert old.rope == RopeConfig(theta=5e5, rope_type="llama3", factor=8.0, original_max_position_embeddings=512)


def test_rope_scaling_wins_over_rope_parameters():
    text = DecoderConfig.from_hf(
        {**_DECODER, "rope_parameters": {"rope_theta": 1e6}, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    )
    assert (text.rope.theta, text.rope.rope_type, text.rope.factor) == (1e6, "linear", 2.0)


def test_decoder_defaults_follow_transformers():
    text = DecoderConfig.from_hf(_DECODER)
    assert (text.num_kv_heads, text.head_dim, text.norm_eps, text.activation) == (4, 16, 1e-6, "silu")
    assert text.rope == RopeConfig(theta=10000.0) and text.attention_window is None
    explicit = DecoderConfig.from_hf({**_DECODER, "num_key_value_heads": 2, "head_dim": 32, "rope_theta": 5e5})
    assert (explicit.num_kv_heads, explicit.head_dim, explicit.rope.theta) == (2, 32, 5e5)
    # null is what some hub configs write for "derive it"
    assert DecoderConfig.from_hf({**_DECODER, "head_dim": None, "num_key_value_heads": None}).head_dim == 16


def test_each_family_has_its_own_defaults():
    bert = BertConfig.from_hf(_DECODER)
    assert (bert.norm_eps, bert.activation, bert.type_vocab_size) == (1e-12, "gelu", 2)
    qwen2_vl = Qwen2VLTextConfig.from_hf({**_DECODER, "hidden_size": 512})  # head size 128, as the sections need
    assert qwen2_vl.rope == RopeConfig(theta=1000000.0, mrope_section=(16, 24, 24))


def test_a_real_bert_folder_reads_as_bert(minilm):
    config = ModelConfig.load(minilm)
    assert isinstance(config.text, BertConfig) and config.vision is None
    assert _fields(config.text, "num_layers", "head_dim", "norm_eps") == (6, 32, 1e-12)
    assert config.head_dims == {32}


def test_qwen2_vl_reads_the_same_in_hub_and_transformers_5_spelling(tmp_path):
    hub = _load(tmp_path, _GME_HUB)
    v5 = _load(tmp_path, _GME_V5)
    assert hub.text.head_dim == v5.text.head_dim == 128 and hub.text.num_kv_heads == v5.text.num_kv_heads == 2
    assert hub.text.rope.mrope_section == v5.text.rope.mrope_section == (16, 24, 24)
    assert hub.text.rope.theta == v5.text.rope.theta == 1000000.0
    for vision in (hub.vision, v5.vision):
        assert isinstance(vision, Qwen2VLVisionConfig)
        assert _fields(vision, "hidden_size", "num_layers", "head_dim", "intermediate_size") == (1280, 32, 80, 5120)
        assert _fields(vision, "out_hidden_size", "num_channels", "patch_size") == (1536, 3, 14)
        assert vision.temporal_patch_size == 2
        assert (vision.spatial_merge_size, vision.tokens_per_image, vision.image_token_id) == (2, None, 151655)
        assert vision.rope.theta == 10000.0
    assert hub.head_dims == v5.head_dims == {128, 80}
    assert hub.context_length == v5.context_length == 32768  # the hub's window is switched off


# gte-modernbert-base's shape as the hub spells it (transformers 4: no layer_types, no rope_parameters)
_MODERNBERT_HUB = {
    "architectures": ["ModernBertModel"], "hidden_size": 768, "intermediate_size": 1152, "num_hidden_layers": 22,
    "num_attention_heads": 12, "vocab_size": 50368, "max_position_embeddings": 8192, "norm_eps": 1e-5,
    "hidden_activation": "gelu", "global_attn_every_n_layers": 3, "local_attention": 128,
    "global_rope_theta": 160000.0, "local_rope_theta": 10000.0, "attention_bias": False, "norm_bias": False,
}  # fmt: skip


def test_modernbert_reads_the_same_in_hub_and_transformers_5_spelling(tmp_path):
    from transformers import ModernBertConfig as Reference

    v5_dict = Reference(**_MODERNBERT_HUB).to_dict()  # as transformers 5 saves it: layer_types, rope_parameters
    assert "layer_types" in v5_dict and "full_attention" in v5_dict["rope_parameters"]
    hub = _load(tmp_path, _MODERNBERT_HUB)
    v5 = _load(tmp_path, {**v5_dict, "architectures": ["ModernBertModel"]})
    assert hub.text == v5.text and isinstance(hub.text, ModernBertConfig)
    every_third_global = ["full_attention", "sliding_attention", "sliding_attention"] * 7 + ["full_attention"]
    assert list(hub.text.layer_types) == v5_dict["layer_types"] == every_third_global
    ropes_and_window = (hub.text.global_rope.theta, hub.text.local_rope.theta, hub.text.local_window)
    assert ropes_and_window == (160000.0, 10000.0, (64, 64))
    assert (hub.context_length, hub.pooling, hub.text.head_dim) == (8192, "mean", 64)  # local layers cap nothing


def test_modernbert_refuses_what_it_does_not_implement(tmp_path):
    with pytest.raises(ModelConfigError, match="layer_types .* must name 22 layers"):
        _load(tmp_path, {**_MODERNBERT_HUB, "layer_types": ["full_attention"] * 21})
    with pytest.raises(ModelConfigError, match="rope type 'yarn' is not implemented"):
        _load(tmp_path, {**_MODERNBERT_HUB, "rope_scaling": {"rope_type": "yarn", "factor": 2.0}})


def test_clip_vision_lays_out_a_fixed_number_of_tokens(tmp_path):
    clip = {
        "architectures": ["CLIPModel"],
        "projection_dim": 24,
        "text_config": {**_DECODER, "max_position_embeddings": 77},
        "vision_config": {
            "hidden_size": 40, "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4,
            "image_size": 336, "patch_size": 14,
        },
    }  # fmt: skip
    config = _load(tmp_path, clip)
    assert isinstance(config.vision, ClipVisionConfig)
    assert (config.vision.tokens_per_image, config.vision.spatial_merge_size, config.vision.norm_eps) == (577, 1, 1e-5)
    assert (config.text.activation, config.text.eos_token_id, config.embedding_dim) == ("quick_gelu", 2, 24)
    assert config.head_dims == {16, 10}


def test_bad_fields_name_the_field(tmp_path):
    with pytest.raises(ModelConfigError, match=r"Expected `int`, got `str` - at `\$.num_attention_heads`"):
        _load(tmp_path, {"architectures": ["LlamaForCausalLM"], **_DECODER, "num_attention_heads": "four"})
    with pytest.raises(ModelConfigError, match="missing required field `intermediate_size`"):
        no_mlp_size = {k: v for k, v in _DECODER.items() if k != "intermediate_size"}
        _load(tmp_path, {"architectures": ["BertModel"], **no_mlp_size})
    with pytest.raises(ModelConfigError, match="needs a vision_config"):
        _load(tmp_path, {k: v for k, v in _GME_HUB.items() if k != "vision_config"})
    with pytest.raises(ModelConfigError, match=r"mrope_section \[16, 24, 32\] must sum to head_dim / 2 = 64"):
        _load(tmp_path, {**_GME_HUB, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 32]}})
    with pytest.raises(ModelConfigError, match="rope type 'yarn' is not implemented"):
        _load(tmp_path, {**_GME_HUB, "rope_scaling": {"type": "yarn", "mrope_section": [16, 24, 24]}})


def test_the_config_crosses_to_the_scheduler_process_intact(tmp_path):
    config = _load(tmp_path, _GME_HUB)  # spawn pickles it for every rank
    assert pickle.loads(pickle.dumps(config)) == config


def test_half_is_refused_with_its_replacement_named():
    assert resolve_dtype("float16", "cpu") == "float16"
    with pytest.raises(ModelConfigError, match="for SGLang's `half`, say float16"):
        resolve_dtype("half", "cuda")


# EmbeddingGemma's config.json as the hub spells it (transformers 4.57): top-level thetas, explicit layer types
_EMBEDDINGGEMMA_HUB = {
    "architectures": ["Gemma3TextModel"], "hidden_size": 768, "intermediate_size": 1152, "num_hidden_layers": 6,
    "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 256, "query_pre_attn_scalar": 256,
    "vocab_size": 262144, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "sliding_window": 512,
    "hidden_activation": "gelu_pytorch_tanh", "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
    "rope_scaling": None, "attn_logit_softcapping": None, "final_logit_softcapping": None,
    "use_bidirectional_attention": True, "_sliding_window_pattern": 6,
    "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
}  # fmt: skip


def test_gemma3_reads_the_same_in_hub_and_transformers_5_spelling():
    from transformers import Gemma3TextConfig as Reference

    hub = Gemma3TextConfig.from_hf(_EMBEDDINGGEMMA_HUB)
    v5 = Gemma3TextConfig.from_hf(Reference(**_EMBEDDINGGEMMA_HUB).to_dict())
    assert hub == v5
    assert (hub.rope.theta, hub.local_rope.theta) == (1000000.0, 10000.0)
    assert (hub.head_dim, hub.num_kv_heads, hub.attention_scale) == (256, 1, 256**-0.5)
    # transformers masks |query - key| < 512 // 2 + 1 in a bidirectional local layer; the context is not capped
    assert hub.local_window == (256, 256) and hub.attention_window is None
    causal = Gemma3TextConfig.from_hf({**_EMBEDDINGGEMMA_HUB, "use_bidirectional_attention": False})
    assert causal.local_window == (511, 0)


def test_gemma3_layer_types_follow_the_pattern_when_absent():
    raw = {k: v for k, v in _EMBEDDINGGEMMA_HUB.items() if k != "layer_types"}
    assert Gemma3TextConfig.from_hf({**raw, "sliding_window_pattern": 3}).layer_types == (
        "sliding_attention", "sliding_attention", "full_attention") * 2  # fmt: skip
    scaled = Gemma3TextConfig.from_hf({**raw, "rope_scaling": {"rope_type": "linear", "factor": 8.0}})
    assert (scaled.rope.factor, scaled.local_rope.factor) == (8.0, 1.0)  # the global layers' rotary only


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping 50.0 is not implemented"),
        ({"layer_types": ["sliding_attention"] * 5 + ["chunked_attention"]}, "layer_types must give one of"),
        ({"layer_types": ["full_attention"]}, "each of the 6 layers"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope type 'yarn' is not implemented"),
    ],
)
def test_gemma3_values_the_engine_does_not_implement_are_refused(changes, message):
    # __post_init__'s refusals reach ModelConfig.load as msgspec's ValidationError, which it reports the same way
    with pytest.raises((ArchConfigError, msgspec.ValidationError), match=message):
        Gemma3TextConfig.from_hf({**_EMBEDDINGGEMMA_HUB, **changes})
