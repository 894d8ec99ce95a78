"""Attention backends behind one small interface, chosen by name; kernel libraries are imported lazily."""

from __future__ import annotations

import importlib.util
import logging

from engine.attention.base import AttentionBackend
from engine.backend_names import BACKEND_NAMES

logger = logging.getLogger(__name__)


class AttentionBackendError(ValueError):
    """The requested backend cannot run here; the message says why."""


def flashinfer_installed() -> bool:
    return importlib.util.find_spec("flashinfer") is not None


def choose_backend_name(
    requested: str, device: str, head_dims: set[int], dtype: str, flashinfer_available: bool | None = None
) -> str:
    """The backend that will run: `auto` prefers FlashInfer on CUDA; an unsupported shape falls back with a log line."""
    from engine.attention.flashinfer_backend import unsupported_reason

    if requested not in BACKEND_NAMES:
        raise AttentionBackendError(f"--attention-backend {requested!r} is not one of {', '.join(BACKEND_NAMES)}")
    if requested in ("torch_native", "sdpa"):
        return "torch_native"
    if requested == "triton":
        raise AttentionBackendError(
            "--attention-backend triton is reserved but not built; use flashinfer or torch_native"
        )
    on_cuda = device.startswith("cuda")
    available = flashinfer_installed() if flashinfer_available is None else flashinfer_available
    if requested == "flashinfer":
        if not on_cuda:
            raise AttentionBackendError(f"--attention-backend flashinfer needs a CUDA device, not {device}")
        if not available:
            raise AttentionBackendError(
                "--attention-backend flashinfer: flashinfer is not installed (pip install 'embedserve[gpu]')"
            )
    elif not (on_cuda and available):
        return "torch_native"
    reason = unsupported_reason(head_dims, dtype)
    if reason is not None:
        logger.warning("attention: FlashInfer cannot run this model (%s); using torch_native", reason)
        return "torch_native"
    return "flashinfer"


def create_attention_backend(name: str, device: str) -> AttentionBackend:
    """Build a backend chosen by `choose_backend_name`."""
    if name == "flashinfer":
        from engine.attention.flashinfer_backend import FlashInferBackend

        return FlashInferBackend(device)
    from engine.attention.torch_native import TorchNativeBackend

    return TorchNativeBackend()


__all__ = [
    "AttentionBackend",
    "AttentionBackendError",
    "BACKEND_NAMES",
    "choose_backend_name",
    "create_attention_backend",
]
