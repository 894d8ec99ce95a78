"""Where the scheduler ranks run: data-parallel replicas, tensor-parallel ranks, nodes, and how each group meets."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from processes.scheduler_config import RankPlacement

if TYPE_CHECKING:
    from engine.model_config import ModelConfig
    from server.launch.args import ServerArgs


def ranks_per_node(args: ServerArgs) -> int:
    return args.tp_size // args.nnodes


def local_placements(args: ServerArgs) -> list[RankPlacement]:
    """The ranks this node runs, replica by replica; each replica's ranks are spread evenly over the nodes."""
    per_node = ranks_per_node(args)
    first = args.node_rank * per_node
    placements = []
    for dp_index, address in enumerate(_init_addresses(args)):
        for tp_rank in range(first, first + per_node):
            local_index = dp_index * per_node + tp_rank - first
            placements.append(RankPlacement(dp_index, args.dp_size, tp_rank, args.tp_size, address, local_index))
    return placements


def _init_addresses(args: ServerArgs) -> list[str | None]:
    """One meeting point per replica: --dist-init-addr's port plus the replica index, or free loopback ports.

    On one node the ranks meet on loopback whatever --dist-init-addr's host says (its port is kept), so the
    unauthenticated rendezvous store and the gloo/NCCL sockets are out of the network's reach
    (engine/distributed.py binds them there).
    """
    if args.tp_size == 1:
        return [None] * args.dp_size
    if args.dist_init_addr is not None:
        host, port = split_host_port(args.dist_init_addr)
        host = host if args.nnodes > 1 else "127.0.0.1"
        return [f"{host}:{port + i}" for i in range(args.dp_size)]
    return [f"127.0.0.1:{_free_loopback_port()}" for _ in range(args.dp_size)]


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def check_topology_args(tp_size: int, dp_size: int, nnodes: int, node_rank: int, dist_init_addr: str | None) -> None:
    """Raises ValueError naming the flag when the ranks cannot be laid out as asked."""
    for name, value in (("tp_size", tp_size), ("dp_size", dp_size), ("nnodes", nnodes)):
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= node_rank < nnodes:
        raise ValueError(f"--node-rank {node_rank} must lie in 0..{nnodes - 1} (--nnodes {nnodes})")
    if tp_size % nnodes:
        raise ValueError(
            f"--tp-size {tp_size} must divide by --nnodes {nnodes}: each node runs the same number of ranks"
        )
    if nnodes > 1 and dist_init_addr is None:
        raise ValueError("--nnodes above 1 needs --dist-init-addr HOST:PORT (node 0's address)")
    if dist_init_addr is not None:
        try:
            _, port = split_host_port(dist_init_addr)
        except ValueError as error:
            raise ValueError(f"--dist-init-addr: {error}") from None
        if not 0 < port <= 65536 - dp_size:
            raise ValueError(f"--dist-init-addr port {port} leaves no room for {dp_size} replica ports")


def tensor_parallel_problem(config: ModelConfig, tp_size: int) -> str | None:
    """Why `config`'s model cannot be split over `tp_size` ranks, or None; checked before any process starts."""
    if tp_size == 1:
        return None
    if config.spec.multimodal is not None:
        return f"{config.architecture} is multimodal: --tp-size above 1 serves text models only (BERT, decoders)"
    heads, kv_heads, mlp_size = config.text.num_heads, config.text.num_kv_heads, config.text.intermediate_size
    if heads % tp_size:
        return f"its {heads} attention heads do not divide by --tp-size {tp_size}"
    if kv_heads % tp_size and tp_size % kv_heads:
        return f"its {kv_heads} key/value heads can be neither split nor replicated over --tp-size {tp_size}"
    if mlp_size % tp_size:
        return f"its MLP size {mlp_size} does not divide by --tp-size {tp_size}"
    return None


def gpu_shortage(args: ServerArgs, device: str) -> str | None:
    """On CUDA every local rank needs its own GPU."""
    if not device.startswith("cuda") or (args.tp_size == 1 and args.dp_size == 1):
        return None
    import torch

    needed, present = ranks_per_node(args) * args.dp_size, torch.cuda.device_count()
    return f"this node runs {needed} ranks but sees {present} GPUs" if needed > present else None
