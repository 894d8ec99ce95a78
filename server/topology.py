"""Where the scheduler ranks run: data-parallel replicas, tensor-parallel ranks, nodes, and how each group meets."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.model_config import ModelConfig
    from server.args import ServerArgs


@dataclass(frozen=True)
class RankPlacement:
    """One scheduler process: rank `tp_rank` of replica `dp_index`'s tensor-parallel group."""

    dp_index: int = 0
    dp_size: int = 1
    tp_rank: int = 0
    tp_size: int = 1
    init_address: str | None = None  # HOST:PORT where the replica's ranks meet; None with one rank
    local_index: int = 0  # position among this node's ranks: picks the node's GPU

    @property
    def single(self) -> bool:
        return self.tp_size == 1 and self.dp_size == 1

    @property
    def role(self) -> str:
        """The short name in `ps` (the kernel keeps 15 bytes of "embedserve-<role>")."""
        if self.single:
            return "scheduler"
        return f"tp{self.tp_rank}" if self.dp_size == 1 else f"d{self.dp_index}t{self.tp_rank}"

    @property
    def process_name(self) -> str:
        """The full name in logs and in the 503 a client gets when this process dies."""
        if self.single:
            return "embedserve-scheduler"
        replica = f"-dp{self.dp_index}" if self.dp_size > 1 else ""
        return f"embedserve-scheduler{replica}-tp{self.tp_rank}"

    def device(self, device: str) -> str:
        """The torch device of this rank: its own GPU on CUDA (several ranks share a node)."""
        if self.single or not device.startswith("cuda"):
            return device
        return f"cuda:{self.local_index}"


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
    """One meeting point per replica: --dist-init-addr's port plus the replica index, or free loopback ports."""
    if args.tp_size == 1:
        return [None] * args.dp_size
    if args.dist_init_addr is not None:
        host, port = split_host_port(args.dist_init_addr)
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


def check_topology_args(args: ServerArgs) -> None:
    from server.args import ServerArgsError

    for name in ("tp_size", "dp_size", "nnodes"):
        if getattr(args, name) < 1:
            raise ServerArgsError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.node_rank < args.nnodes:
        raise ServerArgsError(f"--node-rank {args.node_rank} must lie in 0..{args.nnodes - 1} (--nnodes {args.nnodes})")
    if args.tp_size % args.nnodes:
        raise ServerArgsError(
            f"--tp-size {args.tp_size} must divide by --nnodes {args.nnodes}: each node runs the same number of ranks"
        )
    if args.nnodes > 1 and args.dist_init_addr is None:
        raise ServerArgsError("--nnodes above 1 needs --dist-init-addr HOST:PORT (node 0's address)")
    if args.dist_init_addr is not None:
        try:
            _, port = split_host_port(args.dist_init_addr)
        except ValueError as error:
            raise ServerArgsError(f"--dist-init-addr: {error}") from None
        if not 0 < port <= 65536 - args.dp_size:
            raise ServerArgsError(f"--dist-init-addr port {port} leaves no room for {args.dp_size} replica ports")


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
