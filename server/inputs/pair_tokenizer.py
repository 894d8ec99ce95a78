"""Query-document pairs for cross-encoders: the tokenizer's pair template, token types, and the document-only truncation."""

from __future__ import annotations

import itertools

import numpy as np
from transformers import PreTrainedTokenizerBase

from server.http.errors import APIError
from server.inputs.tokenizer_manager import TokenizedInputs, rust_backend


class PairTokenizerError(ValueError):
    """The model's tokenizer cannot lay out pairs here; the message says why (raised at startup)."""


class PairTokenizer:
    """Lays each (query, document) out as `tokenizer(query, document)` does: BERT's [CLS] q [SEP] d [SEP] with token
    types 0 then 1, XLM-R's <s> q </s></s> d </s>.

    A pair longer than the context is refused, or, when truncating, loses tokens from its document only (from
    `side`: the end unless "left"): the query is what every score of the request shares, so it is never cut.
    """

    takes_instruction = False  # a cross-encoder scores the pair as it is

    def __init__(self, tokenizer: PreTrainedTokenizerBase, context_length: int):
        self.context_length = context_length
        # a core without truncation: `post_process` would otherwise truncate the pair its own way
        backend = rust_backend(tokenizer, None)
        if backend is None:
            raise PairTokenizerError("a cross-encoder needs a fast tokenizer (the folder's tokenizer.json)")
        self._backend = backend
        self._num_special_tokens = backend.num_special_tokens_to_add(True)
        # transformers passes token types only to models that take them (BERT, not RoBERTa): the others see zeros
        self._sends_token_types = "token_type_ids" in tokenizer.model_input_names

    def tokenize(
        self,
        queries: list[str],
        documents: list[str],
        truncate: bool,
        side: str = "right",
        param: str = "documents",
        instruction: str | None = None,
    ) -> TokenizedInputs:
        """Each pair's ids and token types, concatenated; one query for every document or one per document.

        `param` names the documents in errors (the route's field).
        """
        backend = self._backend
        # Each text is encoded alone and the pair assembled by the post-processor, as encoding the pair does.
        queries_ids = backend.encode_batch_fast(queries, add_special_tokens=False)
        documents_ids = backend.encode_batch_fast(documents, add_special_tokens=False)
        ids: list[list[int]] = []
        types: list[list[int]] = []
        for index, document in enumerate(documents_ids):
            query = queries_ids[index if len(queries_ids) > 1 else 0]
            room = self.context_length - self._num_special_tokens - len(query.ids)
            if len(document.ids) > room:
                check_truncatable(self.context_length, index, len(query.ids), len(document.ids), room, truncate, param)
                document.truncate(room, direction=side)
            pair = backend.post_process(query, document, add_special_tokens=True)
            ids.append(pair.ids)
            types.append(pair.type_ids)
        return packed_pairs(ids, types if self._sends_token_types else None)


def packed_pairs(ids: list[list[int]], types: list[list[int]] | None) -> TokenizedInputs:
    """Each pair's ids (and token types, when the model takes them) concatenated, with the pairs' lengths."""
    lens = np.fromiter((len(pair) for pair in ids), dtype=np.int32, count=len(ids))
    total_tokens = int(lens.sum())
    return TokenizedInputs(
        np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=total_tokens),
        lens,
        None
        if types is None
        else np.fromiter(itertools.chain.from_iterable(types), dtype=np.uint8, count=total_tokens),
    )


def check_truncatable(
    context_length: int,
    index: int,
    query_tokens: int,
    document_tokens: int,
    room: int,
    truncate: bool,
    param: str,
    query_name: str = "the query",
) -> None:
    """A 400 unless the document at `index` may lose tokens: truncation is on and the query leaves it some room."""
    if not truncate:
        total = context_length - room + document_tokens
        raise APIError(
            f"{param}[{index}] has {total} tokens with the query, more than the model's context length "
            f"of {context_length}; shorten it or start the server with --allow-auto-truncate",
            param=param,
        )
    if room < 1:
        raise APIError(
            f"{query_name} has {query_tokens} tokens, which leaves no room for {param}[{index}] within the "
            f"model's context length of {context_length}; only documents are truncated, so shorten the query",
            param="query",
        )
