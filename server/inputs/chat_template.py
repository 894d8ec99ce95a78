"""Embedding prompts for multimodal items, as SGLang builds them for --chat-template gme-qwen2-vl."""

from __future__ import annotations

GME_QWEN2_VL = "gme-qwen2-vl"
CHAT_TEMPLATES = (GME_QWEN2_VL,)

QWEN2_VL_IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
QWEN2_VL_IMAGE_TOKEN = "<|image_pad|>"
# SGLang gives an item without text this text, so an image-only item gets SGLang's vector.
MISSING_TEXT = "padding"


def qwen2_vl_prompt(template: str | None, text: str | None, has_image: bool) -> str:
    """One item's prompt: the image placeholder before the text, inside GME's conversation when the template is set.

    gme-qwen2-vl: system "You are a helpful assistant.", the user turn, an empty assistant turn, <|endoftext|> last.
    """
    content = (QWEN2_VL_IMAGE_PLACEHOLDER if has_image else "") + (MISSING_TEXT if text is None else text)
    if template is None:
        return content
    if template != GME_QWEN2_VL:
        raise ValueError(f"--chat-template {template!r} is not one of {', '.join(CHAT_TEMPLATES)}")
    return (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{content}<|im_end|>\n"
        "<|im_start|>assistant\n<|endoftext|>"
    )
