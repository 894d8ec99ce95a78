"""Query-document pairs for Qwen3-Reranker: the chat prompt of its model card, with an instruction, tokenized as the
card's code tokenizes it, and the document-only truncation."""

from __future__ import annotations

from tokenizers import Encoding
from transformers import PreTrainedTokenizerBase

from server.inputs.pair_tokenizer import PairTokenizerError, check_truncatable, packed_pairs
from server.inputs.tokenizer_manager import TokenizedInputs, rust_backend

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
PREFIX = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
# the assistant turn opens with an empty think block, so the next token is the answer itself
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


class Qwen3RerankerPairs:
    """Lays each pair out as PREFIX + "<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}" + SUFFIX.

    The middle is tokenized in two parts, up to "<Document>:" and then " {doc}": Qwen's pre-tokenizer always splits
    between ">:" and the space, so the ids equal those of the whole text, and the document's tokens are known.
    Truncation cuts the document only (from its end, as the card's right truncation of the whole text does).
    """

    takes_instruction = True

    def __init__(self, tokenizer: PreTrainedTokenizerBase, context_length: int):
        self.context_length = context_length
        backend = rust_backend(tokenizer, None)
        if backend is None:
            raise PairTokenizerError("Qwen3-Reranker needs a fast tokenizer (the folder's tokenizer.json)")
        self._backend = backend
        self._prefix = backend.encode(PREFIX, add_special_tokens=False).ids
        self._suffix = backend.encode(SUFFIX, add_special_tokens=False).ids
        # what the card's `tokenizer(text)` adds to the formatted text (nothing for Qwen's tokenizer)
        self._fixed_tokens = len(self._prefix) + len(self._suffix) + backend.num_special_tokens_to_add(False)
        if self._fixed_tokens >= context_length:
            raise PairTokenizerError(f"the prompt alone needs {self._fixed_tokens} tokens of the {context_length}")

    def tokenize(
        self,
        queries: list[str],
        documents: list[str],
        truncate: bool,
        side: str = "right",
        param: str = "documents",
        instruction: str | None = None,
    ) -> TokenizedInputs:
        """Each pair's prompt ids, concatenated; one query for every document or one per document."""
        backend = self._backend
        instruction = DEFAULT_INSTRUCTION if instruction is None else instruction
        heads = [f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>:" for query in queries]
        heads_ids = backend.encode_batch_fast(heads, add_special_tokens=False)
        documents_ids = backend.encode_batch_fast([f" {document}" for document in documents], add_special_tokens=False)
        ids: list[list[int]] = []
        for index, document in enumerate(documents_ids):
            head = heads_ids[index if len(heads_ids) > 1 else 0]
            room = self.context_length - self._fixed_tokens - len(head.ids)
            if len(document.ids) > room:
                check_truncatable(
                    self.context_length, index, len(head.ids), len(document.ids), room, truncate, param,
                    query_name="the query with its instruction",
                )  # fmt: skip
                document.truncate(room, direction=side)
            text = backend.post_process(Encoding.merge([head, document]), None, add_special_tokens=True)
            ids.append(self._prefix + text.ids + self._suffix)
        return packed_pairs(ids, None)
