"""A tiny random-weight ModernBERT at a trained scale, saved as sentence-transformers saves gte-modernbert (CLS) or
modernbert-embed (mean), with a byte-level BPE tokenizer trained in the test and the hub's config spelling."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.encoder_models import randomize_at_trained_scale
from tests.support.texts import varied_texts

MODERNBERT_SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]  # ids 0-4
# Both layer types run (global every second layer) at rope thetas that differ, as 160,000 and 10,000 do in
# ModernBERT-base; a local layer sees 4 tokens each side, so most test texts are longer than its window.
SHAPE = dict(
    hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
    global_attn_every_n_layers=2, local_attention=8, global_rope_theta=160000.0, local_rope_theta=10000.0,
)  # fmt: skip
LOCAL_HALF_WINDOW = SHAPE["local_attention"] // 2


def modernbert_tokenizer(destination: Path):
    """Byte-level BPE as ModernBERT's (OLMo's) tokenizer, with its special tokens and `[CLS] $A [SEP]` template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=MODERNBERT_SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(varied_texts(200, seed=4), trainer)
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip
    tokenizer.save_pretrained(destination)
    return tokenizer


def build_modernbert_embedder(
    destination: Path, pooling: str = "mean", seed: int = 5, shape: dict | None = None, max_seq_length: int = 512
) -> str:
    """ModernBertModel saved by sentence-transformers (Transformer, Pooling, Normalize), config.json as the hub
    spells it (global_attn_every_n_layers and the two rope thetas, no layer_types or rope_parameters).

    `shape` replaces SHAPE's fields (a benchmark builds gte-modernbert-base's shape with it)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import ModernBertConfig, ModernBertModel

    destination.mkdir(parents=True, exist_ok=True)
    tokenizer = modernbert_tokenizer(destination)
    special = dict(pad_token_id=3, bos_token_id=1, cls_token_id=1, eos_token_id=2, sep_token_id=2)
    sizes = {**SHAPE, **(shape or {})}
    config = ModernBertConfig(vocab_size=len(tokenizer), max_position_embeddings=max_seq_length, **special, **sizes)
    model = ModernBertModel(config)
    randomize_at_trained_scale(model, seed)
    model.save_pretrained(destination)
    _rewrite_config_hub_style(destination / "config.json")
    transformer = Transformer(str(destination), max_seq_length=max_seq_length)
    pooler = Pooling(sizes["hidden_size"], pooling_mode=pooling)
    SentenceTransformer(modules=[transformer, pooler, Normalize()], device="cpu").save(str(destination))
    _rewrite_config_hub_style(destination / "config.json")  # sentence-transformers saved transformers 5's again
    return str(destination)


def _rewrite_config_hub_style(path: Path) -> None:
    config = json.loads(path.read_text())
    assert config["architectures"] == ["ModernBertModel"]
    rope = config.pop("rope_parameters")
    del config["layer_types"]
    config["global_rope_theta"] = rope["full_attention"]["rope_theta"]
    config["local_rope_theta"] = rope["sliding_attention"]["rope_theta"]
    path.write_text(json.dumps(config, indent=2))
