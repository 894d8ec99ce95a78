"""The vocabulary ids of the tokens a reranker scores with (Qwen3-Reranker's "no" and "yes"), read from tokenizer.json."""

from __future__ import annotations

import json
from pathlib import Path


class ClassifierTokenError(ValueError):
    """The folder's tokenizer cannot say which ids the classifier tokens have; the message says why."""


def classifier_token_ids(model_path: str | Path, tokens: list[str]) -> tuple[int, ...]:
    """Each token's id as `tokenizer.convert_tokens_to_ids` gives it: an added token's, else the vocabulary's.

    The token is looked up whole, never tokenized: "yes" is the one vocabulary entry the model answers with.
    """
    path = Path(model_path) / "tokenizer.json"
    if not path.is_file():
        raise ClassifierTokenError(f"no tokenizer.json in {model_path}: the classifier tokens {tokens} need one")
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(tokenizer.get("model", {}).get("vocab") or {})
    vocab.update({added["content"]: added["id"] for added in tokenizer.get("added_tokens", [])})
    missing = [token for token in tokens if token not in vocab]
    if missing:
        raise ClassifierTokenError(f"{path}: the classifier tokens {missing} are not in the vocabulary")
    return tuple(vocab[token] for token in tokens)
