"""A node other than node 0: runs only its scheduler ranks, and stops when they stop (node 0 gone) or on a signal."""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import wait

from processes.ipc import IpcAddresses
from processes.scheduler_config import SchedulerConfig
from server.launch.args import ServerArgs
from server.launch.rank_processes import StartupError, start_scheduler_ranks, stop_children, wait_until_ready

logger = logging.getLogger("embedserve")


def run_worker_node(args: ServerArgs, config: SchedulerConfig) -> int:
    """Exit code: 0 when told to stop; 1 when a rank stopped by itself (the group broke: node 0 or a peer left)."""
    ipc = IpcAddresses.create()  # unused here: only rank 0, on node 0, talks to the frontend
    ranks = []
    try:
        ranks = start_scheduler_ranks(multiprocessing.get_context("spawn"), args, config, ipc, heartbeats=None)
        logger.info("node %d of %d: %d ranks joining %s", args.node_rank, args.nnodes, len(ranks), args.dist_init_addr)
        wait_until_ready(ranks)
        logger.info("node %d: every rank is ready; serving node 0's batches", args.node_rank)
        wait([proc.sentinel for proc in ranks])  # until any rank ends
        for proc in ranks:
            proc.join(timeout=0.5)
        ended = ", ".join(f"{proc.name} (exit code {proc.exitcode})" for proc in ranks if not proc.is_alive())
        logger.error("node %d: %s stopped; stopping this node's ranks", args.node_rank, ended)
        return 1
    except StartupError as error:
        logger.error("startup failed: %s", error)
        return 1
    finally:
        stop_children(ranks)
        ipc.remove()
