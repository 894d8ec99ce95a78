"""Attention backends behind one small interface, chosen by name; kernel libraries are imported lazily."""

from __future__ import annotations

from engine.attention.base import AttentionBackend

BACKEND_NAMES = ("auto", "torch_native", "sdpa", "flashinfer", "triton")


class AttentionBackendError(ValueError):
    """The requested backend cannot run here; the message says why."""


def create_attention_backend(name: str, device: str) -> AttentionBackend:
    """Build the backend named by --attention-backend for `device`."""
    if name not in BACKEND_NAMES:
        raise AttentionBackendError(f"--attention-backend {name!r} is not one of {', '.join(BACKEND_NAMES)}")
    if name in ("auto", "torch_native", "sdpa"):
        from engine.attention.torch_native import TorchNativeBackend

        return TorchNativeBackend()
    raise AttentionBackendError(
        f"--attention-backend {name} is reserved but not built into this version; use torch_native"
    )


__all__ = ["AttentionBackend", "AttentionBackendError", "BACKEND_NAMES", "create_attention_backend"]
