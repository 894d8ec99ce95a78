"""How a text becomes the string the tokenizer sees: sentence-transformers prompts, the multimodal chat template,
and the BOS/EOS a model's folder asks for that its loaded tokenizer omits."""

from __future__ import annotations

import json
from pathlib import Path

from engine.st_config import SentenceTransformersInfo
from server.http.errors import APIError
from server.launch.args import ServerArgsError


def _available(prompts: dict[str, str]) -> str:
    return ", ".join(sorted(prompts)) if prompts else "none (the model folder declares no prompts)"


def check_default_prompt_name(name: str | None, st_info: SentenceTransformersInfo) -> None:
    """Fail at startup, not on every request, when --default-prompt-name names no prompt of the model."""
    if name is not None and name not in st_info.prompts:
        raise ServerArgsError(f"--default-prompt-name {name!r} is not a prompt of this model; available: {_available(st_info.prompts)}")  # fmt: skip


def select_prompt(requested: str | None, server_default: str | None, st_info: SentenceTransformersInfo) -> str:
    """The text prepended to every text input: the request's prompt_name, else --default-prompt-name,
    else the model's own default_prompt_name, else nothing (sentence-transformers' order)."""
    if requested is not None and requested not in st_info.prompts:
        raise APIError(
            f"prompt_name {requested!r} is not a prompt of this model; available: {_available(st_info.prompts)}",
            param="prompt_name",
        )
    name = requested or server_default or st_info.default_prompt_name
    return st_info.prompts.get(name, "") if name else ""


# Multimodal items. gme-qwen2-vl builds the prompt as GME's authors do (gme_inference.py in the model's repository);
# gme-qwen2-vl-sglang as SGLang does, which differs only for an item without text (docs/multimodal.md).
GME_QWEN2_VL = "gme-qwen2-vl"
GME_QWEN2_VL_SGLANG = "gme-qwen2-vl-sglang"
CHAT_TEMPLATES = (GME_QWEN2_VL, GME_QWEN2_VL_SGLANG)

QWEN2_VL_IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
QWEN2_VL_IMAGE_TOKEN = "<|image_pad|>"
# SGLang gives an item without text this text; GME's authors give it none.
SGLANG_MISSING_TEXT = "padding"
GME_SYSTEM_PROMPT = "You are a helpful assistant."


def qwen2_vl_prompt(template: str | None, text: str | None, has_image: bool) -> str:
    """One item's prompt: the image placeholder before the text, inside GME's conversation when the template is set.

    GME: system "You are a helpful assistant.", the user turn, an empty assistant turn, <|endoftext|> last.
    """
    if template not in (None, *CHAT_TEMPLATES):
        raise ValueError(f"--chat-template {template!r} is not one of {', '.join(CHAT_TEMPLATES)}")
    if text is None and template == GME_QWEN2_VL_SGLANG:
        text = SGLANG_MISSING_TEXT
    content = (QWEN2_VL_IMAGE_PLACEHOLDER if has_image else "") + (text or "")
    if template is None:
        return content
    return (
        f"<|im_start|>system\n{GME_SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{content}<|im_end|>\n"
        "<|im_start|>assistant\n<|endoftext|>"
    )


# transformers 5 builds some tokenizers from tokenizer.json alone and drops tokenizer_config.json's
# add_bos_token/add_eos_token: e5-mistral's folder sets `add_eos_token: true` while its tokenizer.json adds
# only `<s>`, so the `</s>` the model pools at would be missing.
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
