"""What a scheduler process is told at start: one frozen object the launcher builds, and where its rank runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.model_config import ModelConfig


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


@dataclass(frozen=True)
class SchedulerConfig:
    """Everything a scheduler rank needs, resolved once by the launcher (no "auto" left but the attention backend)."""

    model: ModelConfig
    device: str  # "cpu" or "cuda"; the placement picks this rank's GPU
    attention_backend: str  # as requested; the runner resolves "auto" once it knows the device and model
    max_prefill_tokens: int  # the token budget of one forward batch
    max_running_requests: int  # the most inputs in one forward batch
    num_threads: int | None  # torch threads; None keeps torch's choice (the cores)
    enable_torch_compile: bool  # Inductor-compiled element-wise steps on the CPU (engine.layers.compiled_elementwise)
    log_level: str
    placement: RankPlacement = field(default_factory=RankPlacement)

    @property
    def rank_device(self) -> str:
        return self.placement.device(self.device)
