"""Startup checks for decoder configs, run in the frontend before any weights load (no torch import)."""

from __future__ import annotations

from typing import Any

from engine.layers.rope_config import read_rope_config


def check_decoder_config(hf: dict[str, Any]) -> int | None:
    """Raise on a rotary setting we cannot compute; return the longest input attended exactly, if limited.

    Sliding-window attention is not implemented: inputs up to the window attend exactly as full causal
    attention, so the context is capped at the window instead of serving different vectors beyond it.
    """
    read_rope_config(hf)
    window = hf.get("sliding_window")
    if window and hf.get("use_sliding_window", True):  # Qwen2/Qwen3 switch it with use_sliding_window
        return int(window)
    return None
