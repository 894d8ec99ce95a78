"""Tiny random-weight BERT and XLM-RoBERTa folders at a trained scale: cross-encoders (rerankers) and an embedder,
each saved with save_pretrained and as sentence-transformers saves it, with an offline tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tests.support.models import minilm_path
from tests.support.texts import varied_texts

SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
XLMR_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0-3 as in XLM-R; <mask> is added last


def randomize_at_trained_scale(model: torch.nn.Module, seed: int) -> None:
    """Matrices with std 1/sqrt(fan_in) and norms near 1, so tokens mix as in a trained model.

    At transformers' init scale (std 0.02) a two-layer encoder's CLS state hardly depends on the text, and a wrong
    mask, position or token type would pass unnoticed.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim == 2:
                param.copy_(noise / param.shape[1] ** 0.5)
            elif "LayerNorm.weight" in name or name.endswith("norm.weight"):  # BERT's, ModernBERT's LayerNorms
                param.copy_(1 + 0.1 * noise)
            else:  # biases and LayerNorm shifts
                param.copy_(0.1 * noise)


def _copy_minilm_tokenizer(destination: Path) -> None:
    """all-MiniLM-L6-v2's real BERT WordPiece tokenizer (uncased, 30,522 tokens)."""
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(minilm_path()) / name, destination / name)


def xlm_roberta_tokenizer(destination: Path):
    """A Unigram tokenizer trained in milliseconds on varied texts, with XLM-R's special tokens and pair template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizer

    core = Tokenizer(models.Unigram())
    core.normalizer = normalizers.NFKC()
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=XLMR_SPECIAL_TOKENS, unk_token="<unk>")
    core.train_from_iterator(varied_texts(200, seed=3), trainer)
    core.add_special_tokens(["<mask>"])
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer = XLMRobertaTokenizer(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )  # fmt: skip
    tokenizer.save_pretrained(destination)
    return tokenizer


def _save_cross_encoder(model, destination: Path) -> str:
    """save_pretrained, then as sentence-transformers' CrossEncoder saves it (its activation in its config)."""
    from sentence_transformers import CrossEncoder

    model.save_pretrained(destination)
    CrossEncoder(str(destination), device="cpu").save_pretrained(str(destination))
    return str(destination)


def build_bert_reranker(destination: Path, seed: int = 0) -> str:
    """BertForSequenceClassification with one label (as ms-marco-MiniLM), MiniLM's tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    destination.mkdir(parents=True, exist_ok=True)
    _copy_minilm_tokenizer(destination)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, num_labels=1, **SHAPE)
    model = BertForSequenceClassification(config)
    randomize_at_trained_scale(model, seed)
    return _save_cross_encoder(model, destination)


def build_xlm_roberta_reranker(destination: Path, seed: int = 1) -> str:
    """XLMRobertaForSequenceClassification with one label (as bge-reranker-v2-m3), a trained Unigram tokenizer."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    destination.mkdir(parents=True, exist_ok=True)
    tokenizer = xlm_roberta_tokenizer(destination)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=130, type_vocab_size=1, pad_token_id=1, num_labels=1,
        layer_norm_eps=1e-5, **SHAPE,
    )  # fmt: skip
    model = XLMRobertaForSequenceClassification(config)
    randomize_at_trained_scale(model, seed)
    return _save_cross_encoder(model, destination)


def build_xlm_roberta_embedder(destination: Path, pooling: str = "mean", seed: int = 2) -> str:
    """XLMRobertaModel saved as a sentence-transformers folder: Transformer, Pooling (`pooling`), Normalize."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import XLMRobertaConfig, XLMRobertaModel

    destination.mkdir(parents=True, exist_ok=True)
    tokenizer = xlm_roberta_tokenizer(destination)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=130, type_vocab_size=1, pad_token_id=1,
        layer_norm_eps=1e-5, **SHAPE,
    )  # fmt: skip
    model = XLMRobertaModel(config)
    randomize_at_trained_scale(model, seed)
    model.save_pretrained(destination)
    transformer = Transformer(str(destination), max_seq_length=128)
    pooler = Pooling(SHAPE["hidden_size"], pooling_mode=pooling)
    SentenceTransformer(modules=[transformer, pooler, Normalize()], device="cpu").save(str(destination))
    config_file = destination / "config.json"
    assert json.loads(config_file.read_text())["architectures"] == ["XLMRobertaModel"]
    return str(destination)


def build_minilm_with_dense(destination: Path, seed: int = 5) -> str:
    """all-MiniLM-L6-v2 with Dense modules before its Normalize: 384 -> 256 with a bias and Tanh (weights saved as
    pytorch_model.bin), then 256 -> 256 Identity with a residual (model.safetensors)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.dense import Dense
    from torch import nn

    minilm = SentenceTransformer(minilm_path(), device="cpu")
    first = Dense(384, 256, bias=True, activation_function=nn.Tanh())
    second = Dense(256, 256, bias=False, activation_function=nn.Identity(), use_residual=True)
    for offset, dense in enumerate((first, second)):
        randomize_at_trained_scale(dense, seed + offset)
    SentenceTransformer(modules=[minilm[0], minilm[1], first, second, minilm[2]], device="cpu").save(str(destination))
    first_folder = destination / "2_Dense"
    (first_folder / "model.safetensors").unlink()
    torch.save(first.state_dict(), first_folder / "pytorch_model.bin")
    return str(destination)
