"""Reads a model folder's sentence-transformers files (modules.json, pooling, Dense, max_seq_length, prompts)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# The sentence-transformers modules the engine implements, by class name (the module path changed across
# versions: sentence_transformers.models.Pooling, sentence_transformers.sentence_transformer.modules.pooling.Pooling).
# Dropout does nothing at inference. Any other module (LayerNorm, a Router...) would change the vectors.
IMPLEMENTED_MODULES = ("Transformer", "Pooling", "Dense", "Normalize", "Dropout")

# A Dense module's activation, saved as the class path of a torch.nn module, and the engine's name for it
# (engine/layers/activation.py); a path not listed is refused.
DENSE_ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": "linear",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.GELU": "gelu",
}
_DENSE_DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"  # Dense's constructor default, when config omits it
DENSE_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # as sentence-transformers looks for them


class UnsupportedModuleError(ValueError):
    """modules.json lists a module the engine does not implement: serving without it would give wrong vectors."""


@dataclass(frozen=True)
class DenseModule:
    """A sentence-transformers Dense module on the pooled vector: activation(x W^T + b), plus x (or x R^T) with
    `use_residual`."""

    path: str  # its folder: config.json and one of DENSE_WEIGHT_FILES
    in_features: int
    out_features: int
    bias: bool
    activation: str  # an engine/layers/activation.py name
    use_residual: bool = False


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
    dense: tuple[DenseModule, ...] = ()  # applied to the pooled vector in this order, before normalization


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
    """Return pooling, Dense modules, normalization, max_seq_length and prompts declared by the folder, if any."""
    root = Path(model_path)
    modules = _read_json(root / "modules.json")
    pooling = None
    normalize = None
    dense: list[DenseModule] = []
    pooled = False  # a Pooling module came before
    if isinstance(modules, list):
        normalize = False
        for module in modules:
            kind = str(module.get("type", ""))
            name = kind.rsplit(".", 1)[-1]
            where = module.get("path") or module.get("name") or "?"
            if name not in IMPLEMENTED_MODULES:
                raise UnsupportedModuleError(
                    f"modules.json lists the sentence-transformers module {kind!r} (at {where!r}), which this server "
                    f"does not implement (implemented: {', '.join(IMPLEMENTED_MODULES)}); serving the model without "
                    "it would give different vectors than sentence-transformers"
                )
            if name == "Normalize":
                normalize = True
            elif name == "Pooling":
                pooled = True
                pooling_cfg = _read_json(root / module.get("path", "") / "config.json")
                if isinstance(pooling_cfg, dict):
                    pooling = _pooling_from_config(pooling_cfg)
            elif name == "Dense":
                # The engine runs Dense on the pooled vector and normalizes last, as the module order must say.
                if not pooled or normalize:
                    raise UnsupportedModuleError(
                        f"modules.json puts the Dense module at {where!r} before Pooling or after Normalize; "
                        "only Dense modules between them are implemented"
                    )
                dense.append(_dense_module(root / module.get("path", ""), where))
    bert_cfg = _read_json(root / "sentence_bert_config.json")
    max_seq_length = bert_cfg.get("max_seq_length") if isinstance(bert_cfg, dict) else None
    st_cfg = _read_json(root / "config_sentence_transformers.json")
    prompts: dict[str, str] = {}
    default_prompt_name = activation_fn = None
    if isinstance(st_cfg, dict):
        prompts = dict(st_cfg.get("prompts") or {})
        default_prompt_name = st_cfg.get("default_prompt_name")
        activation_fn = st_cfg.get("activation_fn")
    return SentenceTransformersInfo(
        pooling, normalize, max_seq_length, prompts, default_prompt_name, activation_fn, tuple(dense)
    )


def _dense_module(folder: Path, where: str) -> DenseModule:
    """A Dense module's config.json, checked for what the engine implements."""
    cfg = _read_json(folder / "config.json")
    if not isinstance(cfg, dict):
        raise UnsupportedModuleError(f"the Dense module at {where!r} has no config.json")
    activation = str(cfg.get("activation_function") or _DENSE_DEFAULT_ACTIVATION)
    if activation not in DENSE_ACTIVATIONS:
        raise UnsupportedModuleError(
            f"the Dense module at {where!r} uses the activation {activation!r}, which this server does not implement "
            f"(implemented: {', '.join(DENSE_ACTIVATIONS)})"
        )
    for key in ("module_input_name", "module_output_name"):
        if cfg.get(key, "sentence_embedding") not in (None, "sentence_embedding"):
            raise UnsupportedModuleError(
                f"the Dense module at {where!r} has {key} {cfg[key]!r}; only Dense on the pooled sentence_embedding "
                "is implemented"
            )
    if not any((folder / name).is_file() for name in DENSE_WEIGHT_FILES):
        raise UnsupportedModuleError(f"the Dense module at {where!r} has none of {', '.join(DENSE_WEIGHT_FILES)}")
    try:
        return DenseModule(
            path=str(folder),
            in_features=int(cfg["in_features"]),
            out_features=int(cfg["out_features"]),
            bias=bool(cfg.get("bias", True)),
            activation=DENSE_ACTIVATIONS[activation],
            use_residual=bool(cfg.get("use_residual", False)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UnsupportedModuleError(
            f"the Dense module at {where!r} has an unreadable config.json: {error!r}"
        ) from None
