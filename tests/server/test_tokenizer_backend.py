"""The frontend's direct Rust tokenizer path gives exactly the ids the transformers tokenizer gives."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from engine.model_config import ModelConfig
from server.inputs.tokenizer_manager import TokenizerManager
from tests.support.texts import varied_texts

TRICKY = [
    "[CLS] special [SEP] token [MASK] strings <|endoftext|> <|im_start|>",
    "  leading and trailing spaces \t\ttabs\nnew lines  ",
    "ünïcödé Ünïcode 日本語のテキスト 🤖 emoji café naïve",
    "",
    "word " * 400,  # longer than every context here
]


@pytest.fixture(params=["minilm", "qwen3"])
def model_path(request, minilm, tiny_qwen3_embedding) -> str:
    return minilm if request.param == "minilm" else tiny_qwen3_embedding


@pytest.mark.parametrize("truncate", [True, False])
def test_backend_ids_equal_the_transformers_call(model_path, truncate):
    manager = TokenizerManager(ModelConfig.load(model_path), trust_remote_code=False, allow_auto_truncate=truncate)
    assert manager._backend is not None  # both tokenizers are fast: the direct path is the one under test
    texts = varied_texts(80, long_words=150) + TRICKY
    if not truncate:
        texts = [t for t in texts if len(manager.tokenizer(t)["input_ids"]) <= manager.context_length]
    reference = AutoTokenizer.from_pretrained(model_path)(
        texts,
        truncation=truncate,
        max_length=manager.context_length if truncate else None,
        return_attention_mask=False,
    )["input_ids"]
    assert manager._encode(texts) == reference
    # The wrapper re-configures its own core on every call; ours must not be affected by that.
    manager.encode_text("x " * 1000)
    assert manager._encode(texts) == reference
