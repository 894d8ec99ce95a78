"""Notices a dead tensor-parallel peer within seconds, even while the server is idle, and ends this rank."""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

PING_INTERVAL_S = 2.0


def start_peer_watch(rank: int, interval: float = PING_INTERVAL_S) -> None:
    """Rank 0 broadcasts a ping every `interval` seconds over a gloo group of its own; the others receive it.

    A rank that dies closes its connections, and gloo fails the next ping on every rank at once: the
    process exits, so node 0's frontend sees a dead child (503, then exit) and the other nodes' launchers
    see their ranks end. Without it an idle rank 0, asleep in its socket, would learn of a dead peer on
    another node only from the next request. Every rank must call this at the same point (it creates a group).
    """
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(days=3650))

    def ping_forever() -> None:
        ping = torch.zeros(1)
        while True:
            if rank == 0:
                time.sleep(interval)
            try:
                dist.broadcast(ping, src=0, group=group)
            except RuntimeError as error:
                lost = "a peer rank" if rank == 0 else "rank 0"
                logger.critical("rank %d: lost %s (%s); stopping", rank, lost, error)
                os._exit(1)

    threading.Thread(target=ping_forever, name="peer-watch", daemon=True).start()
