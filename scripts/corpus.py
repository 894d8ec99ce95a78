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
