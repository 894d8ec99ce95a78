"""config.json parsed once into typed, frozen structs: each transformer stack's shape, its rotary, its image tower.

msgspec converts the raw dict: our field names on the left, config.json's spelling in `name=`, and each family's
defaults (transformers' own) in the family's subclass. No other module reads config.json's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
from msgspec import field

# Rope types whose frequencies we compute, with the parameters each needs; any other type is refused at
# startup rather than served wrong. "mrope" is Qwen2-VL's older name for default frequencies split by axis.
_ROPE_NEEDS = {
    "default": (),
    "mrope": (),
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


class ArchConfigError(ValueError):
    """config.json asks for something this server does not implement; the message says what."""


class RopeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Rotary settings, whichever way config.json spells them (see `_rope_parameters`)."""

    theta: float = field(default=10000.0, name="rope_theta")
    rope_type: str = "default"
    factor: float = 1.0  # linear and llama3
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    original_max_position_embeddings: int = 8192  # llama3
    mrope_section: tuple[int, ...] | None = None  # Qwen2-VL: how many frequencies follow time, height, width


class TextConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A token transformer's shape (BERT, a decoder, CLIP's text tower); subclasses give each family's defaults."""

    hidden_size: int
    num_layers: int = field(name="num_hidden_layers")
    num_heads: int = field(name="num_attention_heads")
    explicit_kv_heads: int | None = field(default=None, name="num_key_value_heads")
    explicit_head_dim: int | None = field(default=None, name="head_dim")
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int = 0
    norm_eps: float = field(name="layer_norm_eps")
    activation: str = field(name="hidden_act")

    @property
    def num_kv_heads(self) -> int:
        """Grouped-query attention shares each key/value head among several query heads; absent means one each."""
        return self.explicit_kv_heads or self.num_heads

    @property
    def head_dim(self) -> int:
        """Qwen3 and newer Llama/Mistral configs set head_dim explicitly (it need not be hidden / heads)."""
        return self.explicit_head_dim or self.hidden_size // self.num_heads

    @property
    def attention_window(self) -> int | None:
        """Tokens each one attends to when the family slides a window; None for full attention."""
        return None

    @property
    def position_offset(self) -> int:
        """Positions the family reserves before a sequence's first token (RoBERTa: the padding index and below)."""
        return 0

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> TextConfig:
        return msgspec.convert(text_fields(hf), cls)


class BertConfig(TextConfig, frozen=True, kw_only=True):
    norm_eps: float = field(default=1e-12, name="layer_norm_eps")
    activation: str = field(default="gelu", name="hidden_act")
    type_vocab_size: int = 2  # segment embeddings: 0 for a text or a pair's first part, 1 for its second


class XLMRobertaConfig(BertConfig, frozen=True, kw_only=True):
    """BERT's shape with RoBERTa's positions, which count from the padding index (see engine/models/xlm_roberta.py)."""

    pad_token_id: int = 1

    @property
    def position_offset(self) -> int:
        return self.pad_token_id + 1


class ModernBertConfig(TextConfig, frozen=True, kw_only=True):
    """ModernBERT: rotary positions with one theta for global layers and another for local (sliding-window) ones."""

    norm_eps: float = field(default=1e-5, name="norm_eps")
    activation: str = field(default="gelu", name="hidden_activation")
    max_position_embeddings: int = 8192
    attention_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = False
    local_attention: int = 128  # a local layer's whole window: local_attention // 2 tokens on each side
    layer_types: tuple[str, ...]  # "full_attention" | "sliding_attention" per layer (see `from_hf`)
    global_rope: RopeConfig
    local_rope: RopeConfig

    _layer_types: ClassVar[tuple[str, ...]] = ("full_attention", "sliding_attention")

    def __post_init__(self) -> None:
        if len(self.layer_types) != self.num_layers or not set(self.layer_types) <= set(self._layer_types):
            raise ArchConfigError(
                f"layer_types {list(self.layer_types)} must name {self.num_layers} layers, each one of "
                f"{', '.join(self._layer_types)}"
            )

    @property
    def local_window(self) -> tuple[int, int]:
        """(left, right) of a local layer: transformers lets a token see every token within local_attention // 2."""
        half = self.local_attention // 2
        return (half, half)

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> ModernBertConfig:
        """Hub folders (transformers 4) write global_attn_every_n_layers, global_rope_theta and local_rope_theta;
        transformers 5 adds layer_types and per-layer-type rope_parameters, which win when present, as there."""
        raw = text_fields(hf)
        every = int(raw.get("global_attn_every_n_layers") or 3)
        layer_types = raw.get("layer_types") or [
            "sliding_attention" if i % every else "full_attention" for i in range(int(raw["num_hidden_layers"]))
        ]
        per_type = dict(raw.get("rope_parameters") or {})
        ropes = {}
        for key, layer_type, theta_key, theta in (
            ("global_rope", "full_attention", "global_rope_theta", 160000.0),
            ("local_rope", "sliding_attention", "local_rope_theta", 10000.0),
        ):
            spelled = {
                "rope_theta": raw.get(theta_key) or theta,
                "rope_parameters": per_type.get(layer_type),
                "rope_scaling": raw.get("rope_scaling"),
            }
            ropes[key] = _rope_parameters(spelled, {}, ("default",))
        return msgspec.convert({**raw, "layer_types": layer_types, **ropes}, cls)


class ClipTextConfig(TextConfig, frozen=True, kw_only=True):
    norm_eps: float = field(default=1e-5, name="layer_norm_eps")
    activation: str = field(default="quick_gelu", name="hidden_act")
    eos_token_id: int = 2  # 2 is what configs from before transformers PR #24773 say; see engine/models/clip.py


class DecoderConfig(TextConfig, frozen=True, kw_only=True):
    """Llama, Mistral, Qwen2, Qwen3: RMSNorm, a gated MLP, rotary positions."""

    norm_eps: float = field(default=1e-6, name="rms_norm_eps")
    activation: str = field(default="silu", name="hidden_act")
    attention_bias: bool = False  # Llama, Qwen3: biases on the q, k, v and o projections
    mlp_bias: bool = False  # Llama
    sliding_window: int | None = None
    use_sliding_window: bool = True  # Qwen2/Qwen3 switch the window with this flag; Mistral has none
    rope: RopeConfig = field(default_factory=RopeConfig)

    rope_defaults: ClassVar[Mapping[str, Any]] = {}
    rope_types: ClassVar[tuple[str, ...]] = ("default", "linear", "llama3")

    @property
    def attention_window(self) -> int | None:
        return self.sliding_window if self.sliding_window and self.use_sliding_window else None

    @property
    def attention_scale(self) -> float:
        """What attention scores are multiplied by before the softmax."""
        return self.head_dim**-0.5

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> DecoderConfig:
        raw = text_fields(hf)
        return msgspec.convert({**raw, "rope": _rope_parameters(raw, cls.rope_defaults, cls.rope_types)}, cls)


class Qwen2VLTextConfig(DecoderConfig, frozen=True, kw_only=True):
    """Qwen2-VL's language model: a Qwen2 decoder on multimodal rotary positions (M-RoPE)."""

    rope_defaults: ClassVar[Mapping[str, Any]] = {"rope_theta": 1000000.0, "mrope_section": (16, 24, 24)}
    rope_types: ClassVar[tuple[str, ...]] = ("default", "mrope")

    def __post_init__(self) -> None:
        section = self.rope.mrope_section or ()
        if sum(section) != self.head_dim // 2:
            raise ArchConfigError(f"mrope_section {list(section)} must sum to head_dim / 2 = {self.head_dim // 2}")


class Gemma3TextConfig(DecoderConfig, frozen=True, kw_only=True):
    """Gemma3's text stack (EmbeddingGemma): local layers in a window and global layers, each with its own rotary.

    Defaults are transformers' Gemma3TextConfig's. A config value this server does not implement is refused here.
    """

    explicit_kv_heads: int | None = field(default=4, name="num_key_value_heads")
    explicit_head_dim: int | None = field(default=256, name="head_dim")
    activation: str = field(default="gelu_pytorch_tanh", name="hidden_activation")
    sliding_window: int | None = 4096
    layer_types: tuple[str, ...]  # "sliding_attention" (local) or "full_attention" (global), one per layer
    query_pre_attn_scalar: float = 256.0  # attention scores scale by its inverse square root, not head_dim's
    attn_logit_softcapping: float | None = None
    use_bidirectional_attention: bool = False  # EmbeddingGemma: every token sees the whole input (or its window)
    local_rope: RopeConfig = field(default_factory=RopeConfig)  # the local layers' rotary; `rope` is the global one

    rope_defaults: ClassVar[Mapping[str, Any]] = {"rope_theta": 1000000.0}

    def __post_init__(self) -> None:
        if self.attn_logit_softcapping is not None:
            raise ArchConfigError(
                f"attn_logit_softcapping {self.attn_logit_softcapping} is not implemented (the attention kernels "
                "cannot cap scores); serving it would give wrong vectors"
            )
        unknown = sorted(set(self.layer_types) - set(GEMMA3_LAYER_TYPES))
        if unknown or len(self.layer_types) != self.num_layers:
            raise ArchConfigError(
                f"layer_types must give one of {', '.join(GEMMA3_LAYER_TYPES)} for each of the {self.num_layers} "
                f"layers, not {list(self.layer_types)}"
            )
        if "sliding_attention" in self.layer_types and not self.sliding_window:
            raise ArchConfigError("local (sliding_attention) layers need a sliding_window")

    @property
    def attention_window(self) -> None:
        """Only local layers have a window, and they attend in it (see `local_window`): the context is not capped."""
        return None

    @property
    def attention_scale(self) -> float:
        return self.query_pre_attn_scalar**-0.5

    @property
    def local_window(self) -> tuple[int, int]:
        """(left, right) positions a token sees in a local layer, as transformers' Gemma3 masks them.

        Causal: the token and the `sliding_window - 1` before it. Bidirectional: transformers keeps
        `sliding_window // 2 + 1` as an exclusive bound on |query - key| (Gemma3TextConfig.__post_init__ and
        `_bidirectional_window_overlay`), so `sliding_window // 2` on each side.
        """
        window = self.sliding_window or 0
        if self.use_bidirectional_attention:
            return (window // 2, window // 2)
        return (window - 1, 0)

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> Gemma3TextConfig:
        raw = text_fields(hf)
        num_layers = raw.get("num_hidden_layers")
        layer_types = raw.get("layer_types")
        if layer_types is None and isinstance(num_layers, int):
            # transformers' rule for configs without layer_types: every `sliding_window_pattern`-th layer is global
            pattern = int(raw.get("sliding_window_pattern", 6))
            layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_layers)]
        per_type = dict(raw.get("rope_parameters") or {})
        if per_type and not set(per_type) <= set(GEMMA3_LAYER_TYPES):
            raise ArchConfigError(f"Gemma3 rope_parameters must be per layer type, not {per_type}")
        # Hub folders spell them rope_theta, rope_scaling (global layers only) and rope_local_base_freq.
        global_raw = {
            "rope_parameters": per_type.get("full_attention"),
            "rope_scaling": raw.get("rope_scaling"),
            "rope_theta": raw.get("rope_theta"),
            "partial_rotary_factor": raw.get("partial_rotary_factor"),
        }
        local_raw = {
            "rope_parameters": per_type.get("sliding_attention"),
            "rope_theta": raw.get("rope_local_base_freq"),
        }
        fields = {k: v for k, v in raw.items() if k not in ("rope_parameters", "rope_scaling", "rope_theta")}
        return msgspec.convert(
            {
                **fields,
                "layer_types": layer_types,
                "rope": _rope_parameters(global_raw, cls.rope_defaults, cls.rope_types),
                "local_rope": _rope_parameters(local_raw, {"rope_theta": 10000.0}, cls.rope_types),
            },
            cls,
        )


GEMMA3_LAYER_TYPES = ("sliding_attention", "full_attention")


class VisionConfig(msgspec.Struct, frozen=True, kw_only=True):
    """An image tower: its attention shape, and how the frontend lays an image out as tokens."""

    hidden_size: int
    num_layers: int
    num_heads: int
    activation: str = field(default="quick_gelu", name="hidden_act")
    num_channels: int = 3
    patch_size: int
    spatial_merge_size: int = 1  # patches merged (per side) into one language-model token

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def tokens_per_image(self) -> int | None:
        """Positions one image takes in the tower when every image has the same size; None when it varies."""
        return None

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> VisionConfig:
        return msgspec.convert(vision_fields(hf), cls)


class ClipVisionConfig(VisionConfig, frozen=True, kw_only=True):
    num_layers: int = field(name="num_hidden_layers")
    num_heads: int = field(name="num_attention_heads")
    intermediate_size: int
    norm_eps: float = field(default=1e-5, name="layer_norm_eps")
    image_size: int  # every image is resized and cropped to this square

    @property
    def tokens_per_image(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1  # the patches and the class token


class Qwen2VLVisionConfig(VisionConfig, frozen=True, kw_only=True):
    """Qwen2-VL's ViT at native resolution: hub configs and transformers 5 name some fields differently."""

    hidden_size: int = field(name="embed_dim")
    num_layers: int = field(name="depth")
    num_heads: int = field(name="num_heads")
    out_hidden_size: int = field(name="hidden_size")  # the language model's width, after the patch merger
    mlp_ratio: float = 4.0
    num_channels: int = field(default=3, name="in_channels")
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    rope: RopeConfig = field(default_factory=RopeConfig, name="rope_parameters")
    image_token_id: int  # config.json keeps it at the top level

    @property
    def intermediate_size(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> Qwen2VLVisionConfig:
        vision = vision_fields(hf)
        for old, new in (("in_chans", "in_channels"), ("spatial_patch_size", "patch_size")):  # hub spellings
            if old in vision:
                vision.setdefault(new, vision[old])
        return msgspec.convert({**vision, "image_token_id": hf.get("image_token_id")}, cls)


def text_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """Hub configs keep a language model's fields at the top; multimodal ones (and transformers 5) in text_config."""
    return {**hf, **(hf.get("text_config") or {})}


def vision_fields(hf: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(hf.get("vision_config"), dict):
        raise ArchConfigError("a multimodal model's config.json needs a vision_config")
    return dict(hf["vision_config"])


def _rope_parameters(raw: dict[str, Any], defaults: Mapping[str, Any], supported: tuple[str, ...]) -> dict[str, Any]:
    """Hub folders (transformers 4) write rope_theta and rope_scaling; transformers 5 writes rope_parameters.

    When both are present, rope_scaling wins: it is what `--json-model-override-args` users write.
    """
    params = dict(raw.get("rope_parameters") or {})
    scaling = dict(raw.get("rope_scaling") or {})
    if "type" in scaling:  # the older spelling of rope_type
        scaling["rope_type"] = scaling.pop("type")
    params.update(scaling)
    if params and all(isinstance(v, dict) for v in params.values()):
        raise ArchConfigError(f"per-layer-type rope_parameters {sorted(params)} are not supported")
    rope_type = str(params.get("rope_type", "default"))
    if rope_type not in supported:
        raise ArchConfigError(
            f"rope type {rope_type!r} is not implemented (supported: {', '.join(supported)}); "
            "serving it would give wrong vectors"
        )
    missing = [name for name in _ROPE_NEEDS[rope_type] if name not in params]
    if missing:
        raise ArchConfigError(f"rope type {rope_type!r} needs {missing[0]!r} in rope_scaling/rope_parameters")
    partial = float(params.get("partial_rotary_factor", raw.get("partial_rotary_factor") or 1.0))
    if partial != 1.0:
        raise ArchConfigError(f"partial_rotary_factor {partial} is not supported (only 1.0)")
    top_level = {"rope_theta": raw["rope_theta"]} if raw.get("rope_theta") is not None else {}
    return {**defaults, **top_level, **params}
