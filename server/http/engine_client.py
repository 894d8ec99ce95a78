"""The frontend's side of the engine: sends requests to the scheduler, matches results to waiting handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import zmq.asyncio

from processes.channels import AsyncPullChannel, AsyncPushChannel
from processes.ipc import IpcAddresses
from processes.messages import (
    AbortRequest,
    BatchStats,
    EmbedRequest,
    EmbedResponse,
    ImageData,
    RawArray,
    SchedulerInput,
)
from server.http.errors import APIError
from server.http.replica_router import ReplicaRouter
from server.inputs.tokenizer_manager import TokenizedInputs

logger = logging.getLogger(__name__)


class EngineClient:
    def __init__(self, ipc: IpcAddresses, dp_size: int = 1):
        self._ipc = ipc
        self.router = ReplicaRouter(dp_size)  # one scheduler (rank 0) per data-parallel replica
        self._pending: dict[str, asyncio.Future[EmbedResponse]] = {}
        self.dead_reason: str | None = None  # set once a child process has died
        self._receiver: asyncio.Task | None = None
        self.on_batches: Callable[[list[BatchStats]], None] | None = None  # the metrics' hook for forward stats
        self.num_results_discarded = 0  # results that arrived after their client had left

    async def start(self) -> None:
        self._context = zmq.asyncio.Context()
        self._to_schedulers = [
            AsyncPushChannel[SchedulerInput](self._context, self._ipc.scheduler_for(replica.index))
            for replica in self.router.replicas
        ]
        self._from_results = AsyncPullChannel(self._context, self._ipc.frontend, EmbedResponse, bind=True)
        self._receiver = asyncio.create_task(self._receive_forever())

    async def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
        for channel in self._to_schedulers:
            channel.close()
        self._from_results.close()
        self._context.term()

    @property
    def num_pending(self) -> int:
        return len(self._pending)

    async def embed(
        self,
        rid: str,
        inputs: TokenizedInputs,
        encoding_format: str,
        dimensions: int | None,
        images: list[ImageData] | None = None,
        task: str = "embed",
    ) -> EmbedResponse:
        """`task` "score": `inputs` are query-document pairs with token types, answered with raw logits."""
        if self.dead_reason is not None:
            raise APIError(f"the engine is down: {self.dead_reason}", status=503)
        future: asyncio.Future[EmbedResponse] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        request = EmbedRequest(
            rid=rid,
            token_ids=RawArray.from_numpy(inputs.token_ids),
            seq_lens=RawArray.from_numpy(inputs.seq_lens),
            encoding_format=encoding_format,
            dimensions=dimensions,
            # images whose positions are not among the ids (CLIP) count what the vision tower sees
            prompt_tokens=inputs.num_tokens + sum(image.num_tokens for image in images or ()),
            images=images or [],
            sent_at=time.monotonic(),
            task=task,
            token_type_ids=None if inputs.token_type_ids is None else RawArray.from_numpy(inputs.token_type_ids),
        )
        replica = self.router.send(rid, request.prompt_tokens)
        try:
            self._to_schedulers[replica].send_nowait(request)
            return await future
        finally:
            self.router.finish(rid)
            # Cancelling the handler (client gone) cancels the future it awaits: then drop the work before it
            # reaches the model. A future with a result or an error needs no abort.
            unanswered = future.cancelled() or not future.done()
            if self._pending.pop(rid, None) is not None and unanswered and self.dead_reason is None:
                self._to_schedulers[replica].send_nowait(AbortRequest(rid))

    def fail_all(self, reason: str) -> None:
        """A child died: every waiting request gets a 503 now rather than hanging."""
        self.dead_reason = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(APIError(f"the engine is down: {reason}", status=503))

    async def _receive_forever(self) -> None:
        while True:
            response = await self._from_results.recv()
            if response.batches and self.on_batches is not None:
                self.on_batches(response.batches)
            self.router.answered(response.rid)
            future = self._pending.get(response.rid)
            if future is not None and not future.done():
                future.set_result(response)
            else:
                self.num_results_discarded += 1  # its client left; dropping it is the whole job
