"""The scheduler's progress and queue counters in shared memory, read by the frontend for liveness and /stats."""

from __future__ import annotations

import time
from multiprocessing.context import BaseContext

# Slot names of the shared array; every value is a float64 (counts stay exact below 2**53).
_FIELDS = (
    "last_batch_at",  # time.monotonic() when the last forward pass ended (the clock is shared across processes)
    "batches_done",
    "inputs_done",  # inputs that went through a forward pass
    "inputs_dropped",  # queued inputs skipped because their request was aborted: they never reached the model
    "inputs_discarded",  # inputs whose vectors were thrown away because their request was aborted mid-run
    "queued_inputs",  # inputs waiting in the scheduler now
)
_INDEX = {name: i for i, name in enumerate(_FIELDS)}


class EngineHeartbeat:
    """Written only by the scheduler, read by the frontend; a lock-free array of aligned float64 slots."""

    def __init__(self, ctx: BaseContext):
        self._values = ctx.RawArray("d", len(_FIELDS))
        self._values[_INDEX["last_batch_at"]] = time.monotonic()

    def get(self, name: str) -> float:
        return self._values[_INDEX[name]]

    def record(self, queued_inputs: int, dropped: int, discarded: int) -> None:
        values = self._values
        values[_INDEX["queued_inputs"]] = queued_inputs
        values[_INDEX["inputs_dropped"]] = dropped
        values[_INDEX["inputs_discarded"]] = discarded

    def batch_done(self, num_inputs: int) -> None:
        values = self._values
        values[_INDEX["batches_done"]] += 1
        values[_INDEX["inputs_done"]] += num_inputs
        values[_INDEX["last_batch_at"]] = time.monotonic()

    def snapshot(self) -> dict:
        values = {name: self._values[i] for i, name in enumerate(_FIELDS)}
        snapshot = {name: int(value) for name, value in values.items() if name != "last_batch_at"}
        snapshot["seconds_since_last_batch"] = round(time.monotonic() - values["last_batch_at"], 3)
        return snapshot


class ReplicaHeartbeats:
    """One heartbeat per data-parallel replica (its rank 0 writes it); /stats sums them and lists each."""

    def __init__(self, ctx: BaseContext, dp_size: int):
        self.replicas = [EngineHeartbeat(ctx) for _ in range(dp_size)]

    def __getitem__(self, dp_index: int) -> EngineHeartbeat:
        return self.replicas[dp_index]

    def snapshot(self) -> dict:
        each = [heartbeat.snapshot() for heartbeat in self.replicas]
        total = {name: sum(s[name] for s in each) for name in each[0] if name != "seconds_since_last_batch"}
        total["seconds_since_last_batch"] = min(s["seconds_since_last_batch"] for s in each)
        if len(each) > 1:
            total["replicas"] = each
        return total
