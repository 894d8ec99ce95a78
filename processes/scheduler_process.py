"""The scheduler process: receives requests, forms token-budget batches, runs the model, sends vectors on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import torch
import zmq

from engine.faults import is_fatal, with_injected_faults
from engine.inputs import Embedder
from engine.model_runner import ModelRunner
from processes.allocator import allocator_in_use, release_free_memory
from processes.batch_queue import BatchQueue
from processes.channels import PullChannel, PushChannel
from processes.heartbeat import EngineHeartbeat
from processes.ipc import IpcAddresses
from processes.lifecycle import init_child_process, report_failure, report_ready
from processes.messages import AbortRequest, BatchOutput, BatchStats, SchedulerInput
from processes.scheduler_config import SchedulerConfig
from processes.tensor_parallel_rank import BatchSharingRunner, follow_rank_zero, join_tensor_parallel_group

logger = logging.getLogger(__name__)

# After this long without work, what the allocator keeps for the next batch goes back to the OS, so an idle
# server does not hold its busiest moment's memory (docs/reliability.md, "Memory").
IDLE_RELEASE_SECONDS = 2.0


def run_scheduler_process(
    config: SchedulerConfig, ipc: IpcAddresses, ready: Connection, heartbeat: EngineHeartbeat | None = None
) -> None:
    placement = config.placement
    init_child_process(placement.role, config.log_level)
    # the launcher preloads one where present (server/launch/child_environment.py)
    logger.info("malloc: %s", allocator_in_use())
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        device = config.rank_device
        broadcaster = join_tensor_parallel_group(placement, device)
        runner = ModelRunner(
            config.model,
            device,
            config.attention_backend,
            tp_size=placement.tp_size,
            compile_elementwise_steps=config.enable_torch_compile,
        )
        runner.warmup(config.max_prefill_tokens)
        release_free_memory()  # what loading freed, so that it does not count against the plateau
        if placement.tp_rank == 0:  # only rank 0 talks to the other processes
            context = zmq.Context()
            inbox = PullChannel[SchedulerInput](
                context, ipc.scheduler_for(placement.dp_index), SchedulerInput, bind=True
            )
            outbox = PushChannel[BatchOutput](context, ipc.result)
    except Exception as error:
        logger.exception("scheduler failed to start")
        report_failure(ready, error)
        raise SystemExit(1) from error
    if broadcaster is not None and placement.tp_rank > 0:
        report_ready(ready)
        follow_rank_zero(runner, broadcaster, placement.tp_rank)
        return
    report_ready(
        ready,
        {
            "device": str(runner.device),
            "attention_backend": runner.attn.describe(),
            "torch_threads": torch.get_num_threads(),
        },
    )
    queue = BatchQueue(config.max_prefill_tokens, config.max_running_requests)
    embedder: Embedder = runner if broadcaster is None else BatchSharingRunner(runner, broadcaster)
    serve_forever(with_injected_faults(embedder), queue, inbox, outbox, heartbeat)


def serve_forever(
    runner: Embedder,
    queue: BatchQueue,
    inbox: PullChannel[SchedulerInput],
    outbox: PushChannel[BatchOutput],
    heartbeat: EngineHeartbeat | None = None,
    on_idle: Callable[[], object] = release_free_memory,
    idle_seconds: float = IDLE_RELEASE_SECONDS,
) -> None:
    stats: list[BatchStats] = []  # forwards not yet reported; they ride on the next BatchOutput
    worked_since_idle = False
    while True:
        # Sleep in recv while idle; while work is queued, only pick up what has already arrived.
        idle = len(queue) == 0
        messages = inbox.recv_all(block=idle, timeout_s=idle_seconds if idle and worked_since_idle else None)
        if idle and not messages:  # the wait timed out: once per idle spell
            on_idle()
            worked_since_idle = False
            continue
        _take_messages(queue, messages)
        batch = queue.next_batch()
        waiting = len(queue)
        if heartbeat is not None:
            heartbeat.record(waiting, queue.num_dropped_inputs, queue.num_discarded_inputs)
        if not batch:
            continue
        worked_since_idle = True
        num_tokens = sum(len(item.token_ids) for item in batch)
        started = time.monotonic()
        try:
            images = [item.image for item in batch] if any(item.image is not None for item in batch) else None
            vectors = runner.embed([item.token_ids for item in batch], images, BatchQueue.token_types(batch))
        except Exception as error:  # one bad batch fails its requests, not the server
            if is_fatal(error):
                # The device state is unknown: stop, so the frontend answers 503 and exits non-zero.
                logger.critical("fatal error in the forward pass; the scheduler stops: %s", error)
                raise
            logger.exception("forward pass failed for %d inputs", len(batch))
            outputs = queue.fail(batch, f"forward pass failed: {type(error).__name__}: {error}")
        else:
            ended = time.monotonic()
            # Aborts that arrived during the forward: those requests' vectors are discarded here rather than
            # serialized by the result process for a client that has left.
            _take_messages(queue, inbox.recv_all(block=False))
            outputs = queue.complete(batch, vectors, started, ended)
        stats.append(BatchStats(len(batch), num_tokens, time.monotonic() - started, waiting))
        if heartbeat is not None:
            heartbeat.batch_done(len(batch))
            heartbeat.record(len(queue), queue.num_dropped_inputs, queue.num_discarded_inputs)
        if outputs:
            outbox.send(BatchOutput(outputs, stats))
            stats = []


def _take_messages(queue: BatchQueue, messages: list[SchedulerInput]) -> None:
    for message in messages:
        if isinstance(message, AbortRequest):
            queue.abort(message.rid)
        else:
            queue.add(message)
