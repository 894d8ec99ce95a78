"""add_eos_token/add_bos_token in tokenizer_config.json are honoured even where transformers 5 drops them."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoTokenizer

from engine.model_config import ModelConfig
from server.inputs.tokenizer_manager import TokenizerManager


@pytest.fixture
def folder_with_flags(tmp_path, tiny_decoder):
    def make(**flags) -> str:
        folder = tmp_path / "model"
        shutil.copytree(tiny_decoder("mistral-base-sharded"), folder)
        path = folder / "tokenizer_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **flags}))
        return str(folder)

    return make


def _manager(path: str, **kwargs) -> TokenizerManager:
    return TokenizerManager(ModelConfig.load(path, **kwargs), trust_remote_code=False, allow_auto_truncate=True)


def test_declared_eos_is_appended_when_the_tokenizer_omits_it(folder_with_flags):
    path = folder_with_flags(add_eos_token=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    plain = tokenizer("hello world")["input_ids"]
    assert plain[-1] != tokenizer.eos_token_id, "transformers 5 ignores add_eos_token for this tokenizer"
    tokens = _manager(path).tokenize(["hello world", "a"])
    assert tokens.token_ids.tolist() == plain + [tokenizer.eos_token_id] + tokenizer("a")["input_ids"] + [tokenizer.eos_token_id]  # fmt: skip


def test_truncation_keeps_the_appended_eos(folder_with_flags):
    path = folder_with_flags(add_eos_token=True)
    eos = AutoTokenizer.from_pretrained(path).eos_token_id
    tokens = _manager(path, context_length=8).tokenize(["word " * 50])
    assert len(tokens.token_ids) == 8 and tokens.token_ids[-1] == eos


def test_nothing_is_added_without_the_flag(folder_with_flags):
    path = folder_with_flags(add_eos_token=False)
    assert _manager(path).tokenize(["hello world"]).token_ids.tolist() == AutoTokenizer.from_pretrained(path)("hello world")["input_ids"]  # fmt: skip


def test_tokenizers_that_already_add_specials_are_left_alone(tiny_qwen3_embedding):
    # Qwen3-Embedding appends <|endoftext|> itself; no flag asks for more.
    ids = _manager(tiny_qwen3_embedding).tokenize(["hello world"]).token_ids.tolist()
    assert ids == AutoTokenizer.from_pretrained(tiny_qwen3_embedding)("hello world")["input_ids"]
