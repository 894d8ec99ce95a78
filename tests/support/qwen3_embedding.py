"""A tiny stand-in for a Qwen3-Embedding folder: hidden size 1536, a tokenizer that appends <|endoftext|>,
and the sentence-transformers files (last-token pooling, Normalize, query/document prompts).

The hidden size must reach 1536 for SGLang's Matryoshka list, which with the real 151,669-token Qwen
vocabulary would mean a 930 MB embedding table; a byte-level BPE trained here on a few hundred texts
keeps the folder at a few MB while the tokenizer behaves as Qwen3-Embedding's does.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.decoder_models import QWEN_SPECIAL_TOKENS, build_tiny_decoder, write_pooling_modules
from tests.support.texts import mixed_length_batch, varied_texts

HIDDEN_SIZE = 1536
PROMPTS = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
    "document": "",
}


def _train_tokenizer(destination: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=QWEN_SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = varied_texts(200) + mixed_length_batch(200) + list(PROMPTS.values())
    tokenizer.train_from_iterator(corpus, trainer)
    eot = tokenizer.token_to_id("<|endoftext|>")
    # Qwen3-Embedding's tokenizer.json appends <|endoftext|> to every input: the token it pools at.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", pair="$A <|endoftext|> $B:1 <|endoftext|>:1", special_tokens=[("<|endoftext|>", eot)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    wrapped.save_pretrained(destination)


def _write_sentence_transformers_files(destination: Path) -> None:
    pooling = {"word_embedding_dimension": HIDDEN_SIZE, "pooling_mode_lasttoken": True, "include_prompt": True}
    write_pooling_modules(destination, pooling)
    (destination / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 1024}))
    st_config = {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"}
    (destination / "config_sentence_transformers.json").write_text(json.dumps(st_config, indent=2))


def build_tiny_qwen3_embedding(destination: Path) -> str:
    tokenizer_dir = destination.parent / f"{destination.name}-tokenizer"
    _train_tokenizer(tokenizer_dir)
    build_tiny_decoder(
        "qwen3",
        destination,
        causal_lm=False,
        tokenizer_dir=tokenizer_dir,
        config_extra={"hidden_size": HIDDEN_SIZE, "num_hidden_layers": 1, "intermediate_size": 256},
    )
    _write_sentence_transformers_files(destination)
    return str(destination)
