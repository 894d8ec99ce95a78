"""GET /stats: counts read from the one store (the Prometheus registry), plus admission, engine and replica state.

The frontend counts each answer once, in `embedserve_requests` (server/http/metrics.py); the schedulers' counters
stay in their shared memory (processes/heartbeat.py) and are exported at scrape time by `HeartbeatCollector`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from processes.heartbeat import ReplicaHeartbeats

if TYPE_CHECKING:
    from server.http.app import FrontendState

CLIENT_CLOSED = 499  # the status the request log and the counter give an answer nobody was left to read

# /stats' name for each refusal or failure, by the status it was answered with.
_BY_STATUS = {
    "requests_rejected_overloaded": 429,
    "requests_rejected_too_large": 413,
    "requests_rejected_unauthorized": 401,
    "requests_rejected_unavailable": 503,
    "requests_failed_internal": 500,
    "requests_aborted_by_client": CLIENT_CLOSED,
}


def responses_by_status(state: FrontendState) -> Counter:
    """Every answer of a pipeline route and every error of any route, by status, from `embedserve_requests`."""
    by_status: Counter = Counter()
    for metric in state.metrics.requests.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            route, status = sample.labels["route"], int(sample.labels["status"])
            if route in state.pipeline_paths or status >= 400:
                by_status[status] += int(sample.value)
    return by_status


def stats_snapshot(state: FrontendState) -> dict:
    by_status = responses_by_status(state)
    health, engine, admission = state.health, state.engine, state.health.admission
    return {
        "responses_by_status": {str(code): n for code, n in sorted(by_status.items()) if code != CLIENT_CLOSED},
        **{name: by_status[status] for name, status in _BY_STATUS.items()},
        "results_discarded": engine.num_results_discarded,
        "admitted_requests": admission.num_requests,
        "admitted_tokens": admission.num_tokens,
        "max_queued_requests": admission.max_queued_requests,
        "max_queued_tokens": admission.max_queued_tokens,
        "engine_pending_requests": engine.num_pending,
        "stall_seconds": round(health.stall_seconds(), 3),
        "draining": admission.closed_reason is not None,
        "healthy": health.health_problem() is None,
        "engine": state.heartbeat.snapshot() if state.heartbeat is not None else None,
        "replicas": engine.router.snapshot(),
    }


class HeartbeatCollector(Collector):
    """The schedulers' counters, read from their shared memory at each scrape rather than copied."""

    _COUNTERS = {
        "batches_done": "forward passes finished",
        "inputs_done": "inputs that went through a forward pass",
        "inputs_dropped": "queued inputs skipped because their client left",
        "inputs_discarded": "inputs whose vectors were thrown away because their client left mid-run",
    }

    def __init__(self, heartbeats: ReplicaHeartbeats):
        self.heartbeats = heartbeats

    def collect(self) -> Iterator[Metric]:
        snapshots = [heartbeat.snapshot() for heartbeat in self.heartbeats.replicas]
        for name, help_text in self._COUNTERS.items():
            counter = CounterMetricFamily(f"embedserve_scheduler_{name}", help_text, labels=["replica"])
            for index, snapshot in enumerate(snapshots):
                counter.add_metric([str(index)], snapshot[name])
            yield counter
        queued = GaugeMetricFamily("embedserve_scheduler_queued_inputs", "inputs waiting in the scheduler", labels=["replica"])  # fmt: skip
        idle = GaugeMetricFamily("embedserve_scheduler_seconds_since_last_batch", "seconds since the last forward pass ended", labels=["replica"])  # fmt: skip
        for index, snapshot in enumerate(snapshots):
            queued.add_metric([str(index)], snapshot["queued_inputs"])
            idle.add_metric([str(index)], snapshot["seconds_since_last_batch"])
        yield queued
        yield idle


def install_stats(app: FastAPI, state: FrontendState) -> None:
    """GET /stats, and the schedulers' counters in GET /metrics."""
    if state.heartbeat is not None:
        state.metrics.registry.register(HeartbeatCollector(state.heartbeat))

    @app.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(stats_snapshot(state))
