"""Qwen3-Reranker's pairs tokenize exactly as the model card's code tokenizes its formatted prompt, whatever the
document starts with, and truncation cuts the document's end only."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from server.http.errors import APIError
from server.inputs.qwen3_reranker_pairs import Qwen3RerankerPairs
from tests.support.decoder_models import qwen_tokenizer_dir
from tests.support.texts import varied_texts

CARD_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
# documents whose first characters could merge with "<Document>: " if the prompt were split in the wrong place
EDGE_DOCUMENTS = [
    "\nstarts with a newline", "  two spaces", ":colon first", "123 digits", "éclair", "'s a contraction",
    "<|im_end|> a special token", "\t\ttabs", "trailing space ", "中文文档", "!!!", " ",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir())


def card_ids(tokenizer, query: str, document: str, instruction: str, max_length: int) -> list[int]:
    prefix = tokenizer.encode(CARD_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(CARD_SUFFIX, add_special_tokens=False)
    text = f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
    budget = max_length - len(prefix) - len(suffix)
    return prefix + tokenizer(text, truncation="longest_first", max_length=budget)["input_ids"] + suffix


def split(tokens) -> list[list[int]]:
    bounds = np.concatenate(([0], np.cumsum(tokens.seq_lens)))
    return [tokens.token_ids[bounds[i] : bounds[i + 1]].tolist() for i in range(len(tokens.seq_lens))]


def test_pairs_equal_the_cards_tokenization(tokenizer):
    documents = EDGE_DOCUMENTS + varied_texts(12, long_words=10)
    queries = ["what is the capital of france? ", *(f"query {i}\n" for i in range(len(documents) - 1))]
    pairs = Qwen3RerankerPairs(tokenizer, 4096)
    for query_list in (queries[:1], queries):  # one query for all, one per document
        for instruction in (None, "Find code that fixes the error:"):
            got = split(pairs.tokenize(query_list, documents, truncate=False, instruction=instruction))
            expected = [
                card_ids(tokenizer, query_list[i if len(query_list) > 1 else 0], d, instruction or CARD_INSTRUCTION, 4096)
                for i, d in enumerate(documents)
            ]  # fmt: skip
            assert got == expected


def test_truncation_cuts_the_documents_end_as_the_card_does(tokenizer):
    long_document = " ".join(varied_texts(10, seed=4, long_words=30))
    pairs = Qwen3RerankerPairs(tokenizer, 120)
    with pytest.raises(APIError, match=r"documents\[1\] has \d+ tokens with the query, more than .* 120"):
        pairs.tokenize(["q"], ["short", long_document], truncate=False)
    got = split(pairs.tokenize(["q"], ["short", long_document], truncate=True))
    assert got == [card_ids(tokenizer, "q", d, CARD_INSTRUCTION, 120) for d in ("short", long_document)]
    assert len(got[1]) == 120
    with pytest.raises(APIError, match="the query with its instruction has .* shorten the query"):
        pairs.tokenize([long_document], ["a"], truncate=True)
