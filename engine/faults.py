"""Which forward-pass errors are fatal, and a test-only hook that injects faults into the forward pass.

A failed forward normally fails only its batch's requests. An error that leaves the device in an
unknown state (a CUDA error other than out-of-memory) is fatal: the scheduler stops, and the
frontend turns unhealthy, answers 503 and exits non-zero.

Test hook: with EMBEDSERVE_INJECT_FAULTS="forward:ID" (or "fatal:ID", comma-separated), a batch
that contains token id ID raises an ordinary (or a fatal) error. It is read once at scheduler start
and is meant for tests only; see docs/reliability.md.
"""

from __future__ import annotations

import os

import numpy as np

from engine.inputs import Embedder, ImageInput

INJECT_FAULTS_ENV = "EMBEDSERVE_INJECT_FAULTS"


class FatalEngineError(RuntimeError):
    """The model's device can no longer be trusted; the scheduler must stop."""


class InjectedFault(RuntimeError):
    """A forward-pass failure caused on purpose by EMBEDSERVE_INJECT_FAULTS."""


def is_fatal(error: BaseException) -> bool:
    if isinstance(error, FatalEngineError):
        return True
    import torch

    accelerator_error = getattr(torch, "AcceleratorError", None)  # torch >= 2.8 raises it for CUDA errors
    if accelerator_error is not None and isinstance(error, accelerator_error):
        return True
    return isinstance(error, RuntimeError) and "CUDA error" in str(error)


class _FaultInjectingRunner:
    """Wraps a ModelRunner; raises before the forward when a batch holds a trigger token id."""

    def __init__(self, runner: Embedder, triggers: dict[int, type[Exception]]):
        self._runner = runner
        self._triggers = triggers

    def __getattr__(self, name: str):
        return getattr(self._runner, name)

    def embed(
        self,
        sequences: list[np.ndarray],
        images: list[ImageInput | None] | None = None,
        token_types: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        for token_id, error in self._triggers.items():
            if any((seq == token_id).any() for seq in sequences):
                raise error(f"injected {error.__name__} for token id {token_id}")
        return self._runner.embed(sequences, images, token_types)


def with_injected_faults(runner: Embedder) -> Embedder:
    """`runner` itself, or a wrapper that fails on purpose when EMBEDSERVE_INJECT_FAULTS is set."""
    spec = os.environ.get(INJECT_FAULTS_ENV, "").strip()
    if not spec:
        return runner
    kinds: dict[str, type[Exception]] = {"forward": InjectedFault, "fatal": FatalEngineError}
    triggers: dict[int, type[Exception]] = {}
    for part in spec.split(","):
        kind, _, token_id = part.strip().partition(":")
        if kind not in kinds or not token_id.strip().isdigit():
            raise ValueError(f"{INJECT_FAULTS_ENV}={spec!r}: expected entries like forward:ID or fatal:ID")
        triggers[int(token_id)] = kinds[kind]
    return _FaultInjectingRunner(runner, triggers)
