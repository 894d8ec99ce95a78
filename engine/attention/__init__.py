"""Attention backends behind one small interface, chosen by name; kernel libraries are imported lazily."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from engine.attention.base import AttentionBackend
from engine.backend_names import BACKEND_NAMES

logger = logging.getLogger(__name__)


class AttentionBackendError(ValueError):
    """The requested backend cannot run here; the message says why."""


@functools.cache
def flashinfer_import_error() -> str | None:
    """Why `import flashinfer` fails here, or None when it works.

    Finding the package is not enough: its import pulls pynvml, tvm_ffi and torch's CUDA state, and any of
    them can fail on a host that has the package itself.
    """
    try:
        import flashinfer  # noqa: F401
    except Exception as exc:  # any failure inside the import means the backend cannot run
        return f"import flashinfer failed: {type(exc).__name__}: {exc}"
    return None


def choose_backend_name(
    requested: str,
    device: str,
    head_dims: set[int],
    dtype: str,
    flashinfer_probe: Callable[[], str | None] = flashinfer_import_error,
) -> str:
    """The backend that will run: `auto` prefers FlashInfer on CUDA; an unsupported shape falls back with a log line.

    `flashinfer_probe` says why FlashInfer cannot be imported (None when it can); it runs only on CUDA.
    """
    from engine.attention.flashinfer_backend import unsupported_reason

    if requested not in BACKEND_NAMES:
        raise AttentionBackendError(f"--attention-backend {requested!r} is not one of {', '.join(BACKEND_NAMES)}")
    if requested in ("torch_native", "sdpa"):
        return "torch_native"
    on_cuda = device.startswith("cuda")
    if requested == "flashinfer" and not on_cuda:
        raise AttentionBackendError(f"--attention-backend flashinfer needs a CUDA device, not {device}")
    if not on_cuda:
        return "torch_native"
    if requested == "flashinfer" and (import_error := flashinfer_probe()) is not None:
        raise AttentionBackendError(
            f"--attention-backend flashinfer cannot run: {import_error} (pip install 'embedserve[gpu]')"
        )
    reason = unsupported_reason(head_dims, dtype)
    if reason is not None:
        logger.warning("attention: FlashInfer cannot run this model (%s); using torch_native", reason)
        return "torch_native"
    if requested == "auto" and (import_error := flashinfer_probe()) is not None:
        logger.warning("attention: FlashInfer is unavailable (%s); using torch_native", import_error)
        return "torch_native"
    return "flashinfer"


def create_attention_backend(name: str, device: str, dtype: str = "float32") -> AttentionBackend:
    """Build a backend chosen by `choose_backend_name`; on the CPU in bfloat16, with the AMX kernel where it runs."""
    if name == "flashinfer":
        from engine.attention.flashinfer_backend import FlashInferBackend

        return FlashInferBackend(device)
    from engine.attention.cpu_kernel import load_varlen_attention
    from engine.attention.torch_native import TorchNativeBackend

    on_cpu_bf16 = device == "cpu" and dtype == "bfloat16"
    return TorchNativeBackend(load_varlen_attention() if on_cpu_bf16 else None)


__all__ = [
    "AttentionBackend",
    "AttentionBackendError",
    "BACKEND_NAMES",
    "choose_backend_name",
    "create_attention_backend",
    "flashinfer_import_error",
]
