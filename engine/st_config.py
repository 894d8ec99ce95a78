"""Reads a model folder's sentence-transformers files (modules.json, pooling, max_seq_length, prompts)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# The sentence-transformers modules the engine implements, by class name (the module path changed across
# versions: sentence_transformers.models.Pooling, sentence_transformers.sentence_transformer.modules.pooling.Pooling).
# Dropout does nothing at inference. Any other module (Dense, LayerNorm, a Router...) would change the vectors.
IMPLEMENTED_MODULES = ("Transformer", "Pooling", "Normalize", "Dropout")


class UnsupportedModuleError(ValueError):
    """modules.json lists a module the engine does not implement: serving without it would give wrong vectors."""


# sentence-transformers' pooling flags, in the order it checks them, mapped to our names.
_POOLING_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_lasttoken", "last"),
    ("pooling_mode_mean_tokens", "mean"),
)


@dataclass(frozen=True)
class SentenceTransformersInfo:
    """What a model folder's sentence-transformers files say; every field is None when absent."""

    pooling: str | None = None
    normalize: bool | None = None
    max_seq_length: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    activation_fn: str | None = None  # a cross-encoder's activation, as the class path sentence-transformers saves


def _read_json(path: Path) -> dict | list | None:
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _pooling_from_config(cfg: dict) -> str:
    if "pooling_mode" in cfg:  # newer sentence-transformers write the mode as one string
        mode = str(cfg["pooling_mode"]).lower()
        return {"lasttoken": "last", "cls": "cls", "mean": "mean"}.get(mode, mode)
    chosen = [name for flag, name in _POOLING_FLAGS if cfg.get(flag)]
    if len(chosen) != 1 or any(cfg.get(f) for f in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")):
        raise ValueError(f"unsupported sentence-transformers pooling config: {cfg}")
    return chosen[0]


def read_sentence_transformers_info(model_path: str | Path) -> SentenceTransformersInfo:
    """Return pooling, normalization, max_seq_length and prompts declared by the folder, if any."""
    root = Path(model_path)
    modules = _read_json(root / "modules.json")
    pooling = None
    normalize = None
    if isinstance(modules, list):
        types = [str(m.get("type", "")) for m in modules]
        for module, kind in zip(modules, types, strict=True):
            if kind.rsplit(".", 1)[-1] not in IMPLEMENTED_MODULES:
                where = module.get("path") or module.get("name") or "?"
                raise UnsupportedModuleError(
                    f"modules.json lists the sentence-transformers module {kind!r} (at {where!r}), which this server "
                    f"does not implement (implemented: {', '.join(IMPLEMENTED_MODULES)}); serving the model without "
                    "it would give different vectors than sentence-transformers"
                )
        normalize = any(t.endswith(".Normalize") for t in types)
        for module in modules:
            if str(module.get("type", "")).endswith(".Pooling"):
                pooling_cfg = _read_json(root / module.get("path", "") / "config.json")
                if isinstance(pooling_cfg, dict):
                    pooling = _pooling_from_config(pooling_cfg)
    bert_cfg = _read_json(root / "sentence_bert_config.json")
    max_seq_length = bert_cfg.get("max_seq_length") if isinstance(bert_cfg, dict) else None
    st_cfg = _read_json(root / "config_sentence_transformers.json")
    prompts: dict[str, str] = {}
    default_prompt_name = activation_fn = None
    if isinstance(st_cfg, dict):
        prompts = dict(st_cfg.get("prompts") or {})
        default_prompt_name = st_cfg.get("default_prompt_name")
        activation_fn = st_cfg.get("activation_fn")
    return SentenceTransformersInfo(pooling, normalize, max_seq_length, prompts, default_prompt_name, activation_fn)
