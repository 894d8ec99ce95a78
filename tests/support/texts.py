"""A deterministic, varied set of texts: single words, sentences, unicode, punctuation, long paragraphs."""

from __future__ import annotations

import random

_WORDS = [
    "embedding",
    "vector",
    "search",
    "retrieval",
    "semantic",
    "model",
    "server",
    "batch",
    "token",
    "attention",
    "layer",
    "weather",
    "river",
    "mountain",
    "quantum",
    "physics",
    "coffee",
    "language",
    "network",
    "memory",
    "kernel",
    "python",
    "request",
    "latency",
    "throughput",
    "the",
    "a",
    "of",
    "and",
    "in",
    "to",
    "is",
    "was",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
]

_FIXED = [
    "hello",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "ünïcödé tëxt with äccents",
    "日本語のテキストも埋め込みます。",
    "Текст на русском языке.",
    "emoji 🚀🔥 and symbols ©®™",
    "!!! ??? ... ,,, ;;; :::",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\nin text",
    "UPPERCASE TEXT SHOULD BE LOWERCASED BY THE TOKENIZER",
    "numbers 1234567890 and 3.14159 and 1e-10",
    "code: def f(x): return x ** 2  # comment",
    "https://example.com/path?query=1&other=two",
    "a",
    "I",
    "supercalifragilisticexpialidocious",
    "mixed 中文 English العربية text",
]


def varied_texts(count: int = 60, seed: int = 0, long_words: int | None = None) -> list[str]:
    """`count` texts: the fixed ones above, then random sentences with, every fifth, a paragraph of `long_words`
    words (420 unless given). Given `long_words`, a paragraph is there even when `count` leaves no room after the
    fixed texts: it takes the last place."""
    rng = random.Random(seed)
    paragraph_words = 420 if long_words is None else long_words
    texts = list(_FIXED)
    while len(texts) < count:
        kind = len(texts) % 5
        n = paragraph_words if kind == 0 else rng.randint(3, 12) if kind < 3 else rng.randint(20, 120)
        texts.append(_sentence(rng, n))
    texts = texts[:count]
    if long_words is not None and 0 < count <= len(_FIXED):
        texts[-1] = _sentence(rng, long_words)
    return texts


def _sentence(rng: random.Random, num_words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(num_words)).capitalize() + "."


def mixed_length_batch(count: int = 32, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.choice((1, 3, 8, 25, 60, 150)))) for _ in range(count)]
