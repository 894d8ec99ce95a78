"""sentence-transformers prompts: which prompt text an input gets, as `encode(prompt_name=...)` chooses it."""

from __future__ import annotations

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
