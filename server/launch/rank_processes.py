"""Starting this node's scheduler ranks, waiting for every child to be ready, and killing them all."""

from __future__ import annotations

import dataclasses
import logging
import os
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import cast

from engine.model_config import ModelConfig
from processes.heartbeat import ReplicaHeartbeats
from processes.ipc import IpcAddresses
from processes.scheduler_config import SchedulerConfig
from processes.scheduler_process import run_scheduler_process
from server.launch.args import ServerArgs
from server.launch.cpu_threads import threads_per_rank, usable_cores
from server.launch.topology import local_placements, ranks_per_node

logger = logging.getLogger("embedserve")


class StartupError(RuntimeError):
    """A child process failed before it was ready."""


def scheduler_config(args: ServerArgs, model: ModelConfig, device: str) -> SchedulerConfig:
    """The flags a scheduler reads, resolved once; each rank gets a copy with its own placement."""
    return SchedulerConfig(
        model=model,
        device=device,
        attention_backend=args.attention_backend,
        max_prefill_tokens=args.resolved_max_prefill_tokens(device),
        max_running_requests=args.max_running_requests,
        num_threads=threads_per_rank(
            args.num_threads, device, args.dp_size * ranks_per_node(args), usable_cores(), dict(os.environ)
        ),
        enable_torch_compile=args.enable_torch_compile,
        log_level=args.log_level,
    )


def start_scheduler_ranks(
    ctx: SpawnContext,
    args: ServerArgs,
    config: SchedulerConfig,
    ipc: IpcAddresses,
    heartbeats: ReplicaHeartbeats | None,
) -> list[BaseProcess]:
    """One process per rank this node runs; each carries `ready_conn`, where it reports ready or its error."""
    ranks: list[BaseProcess] = []
    for placement in local_placements(args):
        ready, ready_w = ctx.Pipe(duplex=False)
        # only rank 0 of a replica writes its heartbeat
        heartbeat = heartbeats[placement.dp_index] if heartbeats is not None and placement.tp_rank == 0 else None
        proc = ctx.Process(
            target=run_scheduler_process,
            args=(dataclasses.replace(config, placement=placement), ipc, ready_w, heartbeat),
            name=placement.process_name,
        )
        proc.start()
        ready_w.close()
        proc.ready_conn = ready  # type: ignore[attr-defined]
        ranks.append(proc)
    return ranks


def wait_until_ready(children: list[BaseProcess]) -> dict:
    """Block until every child reports ready; returns what they reported (the scheduler's device and backend)."""
    reported: dict = {}
    waiting = {proc.ready_conn: proc for proc in children}  # type: ignore[attr-defined]
    while waiting:
        for ready in wait(list(waiting)):
            proc = waiting.pop(ready)
            conn = cast(Connection, ready)  # wait() hands back the pipes it was given
            try:
                status, detail = conn.recv()
            except EOFError:
                proc.join(timeout=5)
                raise StartupError(f"{proc.name} exited with code {proc.exitcode} before it was ready") from None
            if status != "ready":
                raise StartupError(f"{proc.name}: {detail}")
            logger.info("%s ready %s", proc.name, detail or "")
            reported.update(detail or {})
    return reported


def stop_children(children: list[BaseProcess]) -> None:
    # Children ignore SIGTERM (see processes/lifecycle.py) and hold no state worth saving: kill them.
    for proc in children:
        if proc.is_alive():
            proc.kill()
    for proc in children:
        proc.join()
