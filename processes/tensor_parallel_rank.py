"""A scheduler rank's part in tensor parallelism: rank 0 shares each batch before its forward; the others follow."""

from __future__ import annotations

import logging

import numpy as np

from engine.distributed import BatchBroadcaster, init_tensor_parallel
from engine.faults import FatalEngineError
from engine.inputs import ImageInput
from engine.model_runner import ModelRunner
from processes.peer_watch import start_peer_watch
from processes.scheduler_config import RankPlacement

logger = logging.getLogger(__name__)


def join_tensor_parallel_group(placement: RankPlacement, device: str) -> BatchBroadcaster | None:
    """With several ranks, meet the others before the model is built (the layers read rank and size)."""
    if placement.tp_size == 1:
        return None
    assert placement.init_address is not None, "the topology gives every group of several ranks a meeting address"
    init_tensor_parallel(placement.tp_rank, placement.tp_size, placement.init_address, device)
    broadcaster = BatchBroadcaster()
    start_peer_watch(placement.tp_rank)
    return broadcaster


class BatchSharingRunner:
    """Rank 0's runner: broadcasts each batch so every rank runs the same forward, then runs its own share."""

    def __init__(self, runner: ModelRunner, broadcaster: BatchBroadcaster):
        self._runner = runner
        self._broadcaster = broadcaster

    def __getattr__(self, name: str):
        return getattr(self._runner, name)

    def embed(
        self,
        sequences: list[np.ndarray],
        images: list[ImageInput | None] | None = None,
        token_types: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        if images is not None:
            # The launcher refuses --tp-size above 1 for multimodal models; images are never broadcast.
            raise RuntimeError("tensor-parallel ranks do not share images")
        try:
            self._broadcaster.send(sequences, token_types)
            return self._runner.embed(sequences, token_types=token_types)
        except Exception as error:
            # A rank that failed may have left the others waiting in a collective, or a peer died: the group
            # can no longer be trusted to stay in step, so the scheduler stops and the server goes down with it.
            raise FatalEngineError(f"tensor-parallel forward failed: {type(error).__name__}: {error}") from error


def follow_rank_zero(runner: ModelRunner, broadcaster: BatchBroadcaster, rank: int) -> None:
    """A follower's whole life after warmup: run every batch rank 0 shares; its outputs are rank 0's to send."""
    while True:
        try:
            batch = broadcaster.receive()
        except RuntimeError as error:
            # Rank 0 (or its node) is gone: gloo reports the closed connection. Nothing is left to serve.
            logger.error("rank %d: lost rank 0 (%s); stopping", rank, error)
            raise SystemExit(1) from None
        if batch is None:
            return
        sequences, token_types = batch
        try:
            runner.embed(sequences, token_types=token_types)
        except Exception:
            # As on rank 0, a failed forward leaves the group out of step: stop, and the server stops with us.
            logger.critical("rank %d: the forward pass failed; stopping", rank, exc_info=True)
            raise SystemExit(1) from None
