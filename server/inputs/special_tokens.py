"""BOS/EOS a model's tokenizer_config.json asks for (add_bos_token/add_eos_token) that the loaded tokenizer omits.

transformers 5 builds some tokenizers from tokenizer.json alone and drops these flags: e5-mistral's folder sets
`add_eos_token: true` while its tokenizer.json adds only `<s>`, so the `</s>` the model pools at would be missing.
"""

from __future__ import annotations

import json
from pathlib import Path


def missing_special_tokens(model_path: str, tokenizer) -> tuple[list[int], list[int]]:
    """(ids to prepend, ids to append) to each text's encoding so it carries what the folder declares."""
    config_file = Path(model_path) / "tokenizer_config.json"
    if not config_file.is_file():
        return [], []
    config = json.loads(config_file.read_text(encoding="utf-8"))
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    prefix: list[int] = []
    suffix: list[int] = []
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if config.get("add_bos_token") and bos is not None and (not probe or probe[0] != bos):
        prefix.append(bos)
    if config.get("add_eos_token") and eos is not None and (not probe or probe[-1] != eos):
        suffix.append(eos)
    return prefix, suffix
