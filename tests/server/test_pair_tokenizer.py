"""Query-document pairs tokenize exactly as `tokenizer(query, document)`, token types included, and truncation cuts
the document only, from the side asked for."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from server.http.errors import APIError
from server.inputs.pair_tokenizer import PairTokenizer
from tests.support.encoder_models import xlm_roberta_tokenizer
from tests.support.texts import varied_texts


@pytest.fixture(scope="module")
def bert_tokenizer(minilm):
    return AutoTokenizer.from_pretrained(minilm)


@pytest.fixture(scope="module")
def xlmr_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xlmr-tokenizer")
    xlm_roberta_tokenizer(folder)
    return AutoTokenizer.from_pretrained(folder)


def _split(tokens, values):
    bounds = np.concatenate(([0], np.cumsum(tokens.seq_lens)))
    return [values[bounds[i] : bounds[i + 1]].tolist() for i in range(len(tokens.seq_lens))]


@pytest.mark.parametrize("name", ["bert_tokenizer", "xlmr_tokenizer"])
def test_pairs_equal_the_tokenizers_own(name, request):
    tokenizer = request.getfixturevalue(name)
    documents = varied_texts(20, long_words=30)
    queries = ["what is the capital of france?", *varied_texts(19, seed=9, long_words=20)]
    for query_list in (queries[:1], queries):  # one query for all, one per document
        tokens = PairTokenizer(tokenizer, 512).tokenize(query_list, documents, truncate=False)
        pairs = [tokenizer(query_list[i if len(query_list) > 1 else 0], d) for i, d in enumerate(documents)]
        assert _split(tokens, tokens.token_ids) == [p["input_ids"] for p in pairs]
        if "token_type_ids" in tokenizer.model_input_names:  # BERT: segment 0 then 1
            assert _split(tokens, tokens.token_type_ids) == [p["token_type_ids"] for p in pairs]
            assert set(tokens.token_type_ids.tolist()) == {0, 1}
        else:  # XLM-R takes no token types: the model sees segment 0 everywhere, as with transformers
            assert tokens.token_type_ids is None


def test_truncation_cuts_only_the_document(bert_tokenizer):
    query, document = "where is the river?", " ".join(f"w{i}" for i in range(200))
    pairs = PairTokenizer(bert_tokenizer, 64)
    with pytest.raises(APIError, match=r"documents\[1\] has \d+ tokens with the query, more than .* 64"):
        pairs.tokenize([query], ["short", document], truncate=False)
    for side in ("right", "left"):
        bert_tokenizer.truncation_side = side
        expected = bert_tokenizer(query, document, truncation="only_second", max_length=64)["input_ids"]
        assert pairs.tokenize([query], [document], truncate=True, side=side).token_ids.tolist() == expected
    bert_tokenizer.truncation_side = "right"
    with pytest.raises(APIError, match="shorten the query") as error:
        pairs.tokenize([document], ["short"], truncate=True)
    assert error.value.param == "query"
