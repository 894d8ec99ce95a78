"""Tensor-parallel process groups over torch.distributed, and rank 0 sharing each batch with the other ranks."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

# Header layout broadcast before each batch: [command, num_seqs, num_tokens, 1 if token types follow the ids]
_RUN, _STOP = 1, 0


def init_tensor_parallel(rank: int, world_size: int, init_address: str, device: str, timeout_s: float = 600) -> None:
    """Join the TP group: NCCL on CUDA, gloo on CPU, chosen by the device ("cuda:N" picks this rank's GPU).

    `init_address` is HOST:PORT. A loopback HOST means every rank is on this machine: then nothing listens
    beyond loopback (torch's own tcp:// rendezvous would bind its unauthenticated store on every interface).
    `timeout_s` bounds the rendezvous and the model's collectives; waiting for the next batch is not bounded
    (see BatchBroadcaster).
    """
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        index = torch.device(device).index
        torch.cuda.set_device(rank % torch.cuda.device_count() if index is None else index)
    timeout = datetime.timedelta(seconds=timeout_s)
    host, _, port = init_address.rpartition(":")
    host = host.strip("[]")
    if not _is_loopback(host):  # several nodes: torch's rendezvous, on the network the deployment isolates
        dist.init_process_group(
            backend, init_method=f"tcp://{init_address}", rank=rank, world_size=world_size, timeout=timeout
        )
        return
    interface = _loopback_interface()
    # gloo's pairs and NCCL's bootstrap would otherwise listen on the address the hostname resolves to.
    os.environ["GLOO_SOCKET_IFNAME"] = interface
    os.environ["NCCL_SOCKET_IFNAME"] = interface
    if rank == 0:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, int(port)), family=family, backlog=4 * world_size)
        store = dist.TCPStore(host, int(port), world_size, True, timeout, master_listen_fd=listener.detach())
    else:
        store = dist.TCPStore(host, int(port), world_size, False, timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: another node's
        return False


def _loopback_interface() -> str:
    """The name of this machine's loopback interface (the one flagged IFF_LOOPBACK); `lo` where /sys says nothing."""
    net = Path("/sys/class/net")
    for flags in sorted(net.glob("*/flags")) if net.is_dir() else ():
        try:
            if int(flags.read_text(), 16) & 0x8:
                return flags.parent.name
        except (OSError, ValueError):
            continue
    return "lo"


class BatchBroadcaster:
    """Rank 0 sends each batch's token ids and lengths; every other rank receives exactly the same batch.

    Batches travel over a gloo group of their own, even when the model's collectives use NCCL: token ids
    stay on the host; a follower may wait for the next batch for as long as the server is idle (the
    group's timeout is practically infinite); and a peer that dies closes its connections, which gloo
    reports at once as an error where NCCL would hang. Every rank must build its broadcaster at the same
    point (creating a group is itself a collective).
    """

    def __init__(self) -> None:
        self.group = dist.new_group(backend="gloo", timeout=datetime.timedelta(days=3650))

    def send(self, sequences: list[np.ndarray], token_types: list[np.ndarray] | None = None) -> None:
        lens = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        has_types = int(token_types is not None)
        header = torch.tensor([_RUN, len(sequences), int(lens.sum()), has_types], dtype=torch.int64)
        dist.broadcast(header, src=0, group=self.group)
        parts = [lens, *(s.astype(np.int64) for s in sequences), *(t.astype(np.int64) for t in token_types or ())]
        dist.broadcast(torch.from_numpy(np.concatenate(parts)), src=0, group=self.group)

    def send_stop(self) -> None:
        dist.broadcast(torch.tensor([_STOP, 0, 0, 0], dtype=torch.int64), src=0, group=self.group)

    def receive(self) -> tuple[list[np.ndarray], list[np.ndarray] | None] | None:
        """The next batch's sequences and their token types (None for single texts), or None when rank 0 says stop."""
        header = torch.empty(4, dtype=torch.int64)
        dist.broadcast(header, src=0, group=self.group)
        command, num_seqs, num_tokens, has_types = header.tolist()
        if command == _STOP:
            return None
        payload = torch.empty(num_seqs + num_tokens * (1 + has_types), dtype=torch.int64)
        dist.broadcast(payload, src=0, group=self.group)
        flat = payload.numpy()
        lens = flat[:num_seqs]
        splits = np.cumsum(lens)[:-1]
        tokens = np.split(flat[num_seqs : num_seqs + num_tokens].astype(np.int32), splits)
        types = np.split(flat[num_seqs + num_tokens :].astype(np.int32), splits) if has_types else None
        return tokens, types
