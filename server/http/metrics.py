"""Prometheus metrics for GET /metrics, the one store of the frontend's counts (/stats reads it): requests by route
and status, phase timings, batch shapes, queue depth."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from processes.messages import BatchStats
from server.http.log_safety import escape_for_log
from server.http.process_memory import ProcessMemoryCollector

if TYPE_CHECKING:
    from server.http.app import FrontendState

request_logger = logging.getLogger("embedserve.requests")
_UNLOGGED_ROUTES = ("/metrics", "/health")  # scrapes and probes would drown the request log

# Seconds: an embedding request takes from well under a millisecond (one short text, warm GPU) to
# tens of seconds (a large request queued behind others on a CPU).
_TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_INPUT_BUCKETS = tuple(float(2**i) for i in range(11))  # 1 .. 1024 inputs per forward
_TOKEN_BUCKETS = tuple(float(2**i) for i in range(4, 18))  # 16 .. 131072 tokens per forward
_PREFIX = "embedserve_"


class ServerMetrics:
    """Every metric the frontend exports, in a registry of its own (one per app, so tests never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # the frontend's CPU, memory and open files
        ProcessMemoryCollector(registry=r)  # every process's resident memory, children included
        self.requests = Counter(
            _PREFIX + "requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.request_duration = Histogram(
            _PREFIX + "request_duration_seconds",
            "end-to-end time of an HTTP request, from the first byte seen to the response",
            ["route"],
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.tokenization_duration = Histogram(
            _PREFIX + "tokenization_duration_seconds",
            "validation and tokenization time of an embedding request",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            _PREFIX + "queue_duration_seconds",
            "time an embedding request waited for its first forward pass",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            _PREFIX + "inference_duration_seconds",
            "time from an embedding request's first forward start to its last forward end",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.batch_inputs = Histogram(
            _PREFIX + "batch_inputs", "inputs in one forward pass", buckets=_INPUT_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            _PREFIX + "batch_tokens", "tokens in one forward pass", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.batch_forward_duration = Histogram(
            _PREFIX + "batch_forward_duration_seconds",
            "duration of one forward pass",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            _PREFIX + "prompt_tokens", "tokens embedded; rate() of it is the served tokens/s", registry=r
        )
        self.embedded_inputs = Counter(_PREFIX + "embedded_inputs", "inputs embedded", registry=r)
        self.forward_tokens_per_second = Gauge(
            _PREFIX + "forward_tokens_per_second", "tokens per second of the latest forward pass", registry=r
        )
        self.queue_inputs = Gauge(
            _PREFIX + "queue_inputs", "inputs waiting in the scheduler once the latest batch was formed", registry=r
        )
        self.requests_in_flight = Gauge(
            _PREFIX + "requests_in_flight", "embedding requests sent to the engine and not yet answered", registry=r
        )

    def track_in_flight(self, count: Callable[[], int]) -> None:
        self.requests_in_flight.set_function(count)

    def observe_request(
        self, num_inputs: int, num_tokens: int, tokenization: float, queue: float, inference: float
    ) -> None:
        self.tokenization_duration.observe(tokenization)
        self.queue_duration.observe(queue)
        self.inference_duration.observe(inference)
        self.prompt_tokens.inc(num_tokens)
        self.embedded_inputs.inc(num_inputs)

    def observe_batches(self, batches: list[BatchStats]) -> None:
        for batch in batches:
            self.batch_inputs.observe(batch.num_inputs)
            self.batch_tokens.observe(batch.num_tokens)
            self.batch_forward_duration.observe(batch.forward_time)
            if batch.forward_time > 0:
                self.forward_tokens_per_second.set(batch.num_tokens / batch.forward_time)
        if batches:
            self.queue_inputs.set(batches[-1].waiting_inputs)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestObserver:
    """ASGI middleware: counts and times every HTTP request by route template and status, and logs it.

    Handlers add what only they know (request id, sizes, phase timings) to `request.state.log_fields`.
    """

    def __init__(self, app, metrics: ServerMetrics, log_requests: bool):
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500
        counted = False

        async def send_and_record(message) -> None:
            nonlocal status, counted
            if message["type"] == "http.response.start":
                status, counted = message["status"], True
                # Counted before the answer leaves: a client that reads /stats next sees its own request.
                self.metrics.requests.labels(_route_label(scope), str(status)).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            label = _route_label(scope)
            if not counted:
                self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.request_duration.labels(label).observe(elapsed)
            if self.log_requests and label not in _UNLOGGED_ROUTES:
                fields = {"status": status, "total_ms": f"{elapsed * 1e3:.2f}"}
                fields.update(scope.get("state", {}).get("log_fields", {}))
                # The method and the (percent-decoded) path are the client's: escaped, so they stay on one line.
                line = " ".join(escape_for_log(f"{k}={v}") for k, v in fields.items())
                request_logger.info("%s %s %s", escape_for_log(scope["method"]), escape_for_log(scope["path"]), line)


def _route_label(scope) -> str:
    # Unmatched paths share one label so a scan of random URLs cannot grow the series without bound.
    return getattr(scope.get("route"), "path", None) or "unmatched"


def install_metrics(app: FastAPI, state: FrontendState) -> None:
    """GET /metrics in Prometheus' text format, the middleware that feeds it, and the engine's batch hook."""
    metrics = state.metrics
    app.add_middleware(RequestObserver, metrics=metrics, log_requests=state.args.log_requests)
    state.engine.on_batches = metrics.observe_batches
    metrics.track_in_flight(lambda: state.engine.num_pending)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
