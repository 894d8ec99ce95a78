"""A deterministic, realistic text corpus for benchmarks: about 62 MiniLM tokens per text on average.

Mostly 10-60 tokens, some 100-250, a few at the 256 limit; built from a fixed word list, no download.
"""

from __future__ import annotations

import random

_WORD_LIST = (
    "the of and to in is was for on that with as by at from it an be this are or which have has had not "
    "but were they their been one all would there will can more when what about some into other than then "
    "them these so its only could time new over such after also most made may first two used any many "
    "system data model search query document vector embedding server request latency memory network cloud "
    "river mountain weather city history science music language computer health market energy policy "
    "research student company product service customer price report study result method process design "
    "quantum physics chemistry biology economics finance software hardware security privacy database"
)
_WORDS = _WORD_LIST.split()


def _sentence(rng: random.Random, num_words: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(num_words)]
    return " ".join(words).capitalize() + "."


def realistic_texts(count: int, seed: int = 0) -> list[str]:
    """`count` texts whose MiniLM token lengths follow the mix above (about 1.15 tokens per word here)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        r = rng.random()
        if r < 0.82:
            words = rng.randint(10, 60)
        elif r < 0.97:
            words = rng.randint(85, 215)
        else:
            words = 260  # truncated to the 256-token context by the server's --allow-auto-truncate
        texts.append(_sentence(rng, words))
    return texts


def short_text() -> str:
    """About 10 tokens, for single-request latency."""
    return "What is the weather like in the mountains today?"


def fixed_length_texts(tokenizer, num_tokens: int, count: int, seed: int = 0) -> list[str]:
    """`count` texts of exactly `num_tokens` tokens each as `tokenizer` counts them, special tokens included.

    Each draft is cut at the last word boundary that fits (both WordPiece and byte-level BPE split words there,
    so the prefix keeps its tokens), then topped up with " the", which is one token in both.
    """
    budget = num_tokens - len(tokenizer("")["input_ids"])
    if budget < 1:
        raise ValueError(f"{num_tokens} tokens leave no room beside the tokenizer's special tokens")
    rng = random.Random(seed)
    drafts = [_sentence(rng, budget + 8) for _ in range(count)]  # every word is at least one token
    offsets = tokenizer(drafts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    texts = []
    for draft, spans in zip(drafts, offsets, strict=True):
        end = spans[budget - 1][1]
        texts.append(draft[:end] if draft[end : end + 1] == " " else draft[: max(draft.rfind(" ", 0, end), 0)])
    for _ in range(3):
        lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        if all(n == num_tokens for n in lengths):
            return texts
        texts = [text + " the" * (num_tokens - n) for text, n in zip(texts, lengths, strict=True)]
    raise ValueError(f"could not build texts of exactly {num_tokens} tokens with this tokenizer")
