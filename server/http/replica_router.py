"""Which data-parallel replica gets each request: the one with the fewest tokens sent and not yet answered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ReplicaLoad:
    index: int
    requests_sent: int = 0
    tokens_sent: int = 0
    outstanding: dict[str, tuple[int, float]] = field(default_factory=dict)  # rid -> (tokens, sent_at), oldest first
    outstanding_tokens: int = 0
    last_result_at: float = field(default_factory=time.monotonic)

    @property
    def oldest_pending_since(self) -> float | None:
        oldest = next(iter(self.outstanding.values()), None)
        return None if oldest is None else oldest[1]

    def snapshot(self) -> dict:
        return {
            "replica": self.index,
            "requests_sent": self.requests_sent,
            "tokens_sent": self.tokens_sent,
            "requests_outstanding": len(self.outstanding),
            "tokens_outstanding": self.outstanding_tokens,
        }


class ReplicaRouter:
    """Least outstanding tokens first: a replica busy with long inputs gets fewer new ones; ties go to the lowest."""

    def __init__(self, dp_size: int):
        self.replicas = [ReplicaLoad(i) for i in range(dp_size)]
        self._by_rid: dict[str, ReplicaLoad] = {}

    def send(self, rid: str, num_tokens: int) -> int:
        """Pick the replica for a new request and count it there; returns the replica's index."""
        replica = min(self.replicas, key=lambda r: (r.outstanding_tokens, len(r.outstanding), r.index))
        replica.requests_sent += 1
        replica.tokens_sent += num_tokens
        replica.outstanding[rid] = (num_tokens, time.monotonic())
        replica.outstanding_tokens += num_tokens
        self._by_rid[rid] = replica
        return replica.index

    def answered(self, rid: str) -> None:
        """A result arrived: its replica made progress (it may have been abandoned meanwhile)."""
        replica = self._by_rid.get(rid)
        if replica is not None:
            replica.last_result_at = time.monotonic()

    def finish(self, rid: str) -> None:
        """The request is over (answered, failed or abandoned): its tokens no longer weigh on the replica."""
        replica = self._by_rid.pop(rid, None)
        if replica is not None:
            num_tokens, _ = replica.outstanding.pop(rid)
            replica.outstanding_tokens -= num_tokens

    def snapshot(self) -> list[dict]:
        return [replica.snapshot() for replica in self.replicas]
