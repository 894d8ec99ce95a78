"""Each family's weight-name table: transformers' own checkpoints load onto exactly our parameters, older spellings too."""

from __future__ import annotations

import pytest
import torch

from engine.attention import create_attention_backend
from engine.model_config import ModelConfig
from engine.models.registry import load_model_class

_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=99)


def _reference_models() -> dict[str, object]:
    """Tiny transformers models of every family we serve, built lazily (the imports cost seconds)."""
    import transformers as t

    decoder = dict(_TEXT, num_key_value_heads=2, max_position_embeddings=64)
    return {
        "BertForMaskedLM": lambda: t.BertForMaskedLM(t.BertConfig(**_TEXT, max_position_embeddings=64)),
        "BertForSequenceClassification": lambda: t.BertForSequenceClassification(
            t.BertConfig(**_TEXT, max_position_embeddings=64, num_labels=1)
        ),
        "XLMRobertaModel": lambda: t.XLMRobertaModel(t.XLMRobertaConfig(**_TEXT, max_position_embeddings=66)),
        "XLMRobertaForSequenceClassification": lambda: t.XLMRobertaForSequenceClassification(
            t.XLMRobertaConfig(**_TEXT, max_position_embeddings=66, num_labels=1)
        ),
        # masked-LM saves nest the encoder under model.; biases everywhere, as the bias flags allow
        "ModernBertForMaskedLM": lambda: t.ModernBertForMaskedLM(
            t.ModernBertConfig(**_TEXT, pad_token_id=0, attention_bias=True, mlp_bias=True, norm_bias=True)
        ),
        "LlamaModel": lambda: t.LlamaModel(t.LlamaConfig(**decoder, attention_bias=True, mlp_bias=True)),
        "LlamaForCausalLM": lambda: t.LlamaForCausalLM(t.LlamaConfig(**decoder)),
        "Qwen2ForCausalLM": lambda: t.Qwen2ForCausalLM(t.Qwen2Config(**decoder)),
        "Qwen3ForCausalLM": lambda: t.Qwen3ForCausalLM(t.Qwen3Config(**decoder, head_dim=16)),
        "MistralModel": lambda: t.MistralModel(t.MistralConfig(**decoder)),
        "Gemma3TextModel": lambda: t.Gemma3TextModel(
            t.Gemma3TextConfig(**decoder, head_dim=16, use_bidirectional_attention=True, attention_bias=True)
        ),
        "Gemma3ForCausalLM": lambda: t.Gemma3ForCausalLM(t.Gemma3TextConfig(**decoder, head_dim=16)),
        "Qwen2VLForConditionalGeneration": lambda: t.Qwen2VLForConditionalGeneration(
            t.Qwen2VLConfig(
                text_config=dict(decoder, rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2]}),
                vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2),
            )
        ),
        "CLIPModel": lambda: t.CLIPModel(
            t.CLIPConfig(
                text_config=dict(_TEXT, max_position_embeddings=16),
                vision_config=dict(_TEXT, image_size=28, patch_size=14),
                projection_dim=8,
            )
        ),
    }


@pytest.mark.parametrize("architecture", list(_reference_models()))
def test_transformers_checkpoints_load_onto_exactly_our_parameters(architecture, tmp_path):
    reference = _reference_models()[architecture]()
    reference.config.architectures = [architecture]
    reference.config.save_pretrained(tmp_path)
    config = ModelConfig.load(str(tmp_path))
    ours = load_model_class(architecture)(config, create_attention_backend("torch_native", "cpu"))
    state = reference.state_dict()
    ours.load_weights(state.items())  # raises on any unknown tensor and on any parameter left unloaded
    # every tensor that loads whole lands with its values unchanged (a conv kernel flattened into a linear's)
    ours_params = dict(ours.named_parameters())
    for name, tensor in state.items():
        mapped = ours.weight_names.rename(name)
        if mapped and mapped[1] is None and mapped[0] in ours_params:
            assert torch.equal(ours_params[mapped[0]].data.reshape(-1), tensor.reshape(-1)), name


@pytest.mark.parametrize(
    "architecture, checkpoint_name, expected",
    [
        # BERT task-head checkpoints nest the encoder under bert.; TensorFlow conversions say gamma/beta
        ("BertModel", "bert.encoder.layer.3.attention.self.key.bias", ("layers.3.self_attn.qkv_proj.bias", "k")),
        ("BertModel", "encoder.layer.0.attention.output.LayerNorm.gamma", ("layers.0.attention_norm.weight", None)),
        ("BertModel", "encoder.layer.0.output.LayerNorm.beta", ("layers.0.mlp_norm.bias", None)),
        ("BertModel", "embeddings.LayerNorm.gamma", ("embeddings.norm.weight", None)),
        ("BertModel", "bert.pooler.dense.weight", None),
        ("BertModel", "embeddings.position_ids", None),
        # rerankers keep their heads: BERT's pooler and classifier, RoBERTa's two-layer classifier
        ("BertForSequenceClassification", "bert.pooler.dense.weight", ("head.dense.weight", None)),
        ("BertForSequenceClassification", "classifier.bias", ("head.out_proj.bias", None)),
        ("XLMRobertaForSequenceClassification", "classifier.out_proj.weight", ("head.out_proj.weight", None)),
        ("XLMRobertaForSequenceClassification", "roberta.pooler.dense.weight", None),
        ("XLMRobertaModel", "roberta.encoder.layer.0.output.dense.bias", ("layers.0.mlp.fc2.bias", None)),
        # decoders: with or without the model. prefix; cached rotary tables are not weights
        ("LlamaModel", "layers.1.mlp.gate_proj.weight", ("model.layers.1.mlp.gate_up_proj.weight", 0)),
        ("LlamaForCausalLM", "model.layers.0.self_attn.rotary_emb.inv_freq", None),
        ("LlamaForCausalLM", "lm_head.weight", None),
        # Qwen2-VL as the hub stores it (transformers 4): no language_model / visual nesting under model.
        (
            "Qwen2VLForConditionalGeneration",
            "model.layers.0.self_attn.v_proj.bias",
            ("model.layers.0.self_attn.qkv_proj.bias", "v"),
        ),
        (
            "Qwen2VLForConditionalGeneration",
            "visual.blocks.0.attn.qkv.weight",
            ("visual.blocks.0.self_attn.qkv_proj.weight", None),
        ),
        ("Qwen2VLForConditionalGeneration", "visual.merger.mlp.2.bias", ("visual.merger.mlp.2.bias", None)),
        ("CLIPModel", "logit_scale", None),
        # ModernBERT: q, k, v and the MLP's input and gate are fused in the checkpoint already
        ("ModernBertModel", "layers.2.attn.Wqkv.weight", ("layers.2.attn.qkv_proj.weight", None)),
        ("ModernBertModel", "model.layers.0.mlp.Wi.weight", ("layers.0.mlp.gate_up_proj.weight", None)),
        ("ModernBertForMaskedLM", "head.dense.weight", None),
    ],
)
def test_older_spellings_map_too(architecture, checkpoint_name, expected):
    assert load_model_class(architecture).weight_names.rename(checkpoint_name) == expected


@pytest.mark.parametrize(
    "fused, message",
    [
        ({"up": ("column.weight", 0)}, "shard 0 names a parameter that is not fused"),  # a parallel layer's loader
        ({"up": ("norm.weight", "q")}, "shard 'q' names a parameter that is not fused"),  # the default loader
        ({"up": ("merged.weight", "q")}, "one output at a time by index, not 'q'"),
        ({"up": ("qkv.weight", 1)}, "no shard 1"),
    ],
)
def test_a_table_that_gives_a_shard_to_the_wrong_parameter_is_refused(fused, message):
    from engine.layers.linear import ColumnParallelLinear, MergedColumnParallelLinear, QKVParallelLinear
    from engine.weights import WeightNames, load_named_weights

    model = torch.nn.Module()
    model.column = ColumnParallelLinear(4, 4, bias=False)
    model.norm = torch.nn.LayerNorm(4, bias=False)
    model.merged = MergedColumnParallelLinear(4, [4, 4], bias=False)
    model.qkv = QKVParallelLinear(4, head_dim=2, num_heads=2, num_kv_heads=2, bias=False)
    with pytest.raises(ValueError, match=message):
        load_named_weights(model, [("up", torch.zeros(4, 4))], WeightNames(fused=fused))
