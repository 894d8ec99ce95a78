"""Liveness (/health), readiness (/ready), stall detection and graceful drain of the frontend, from admission state,
engine progress and child health."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from fastapi.responses import Response

from processes.heartbeat import ReplicaHeartbeats
from server.http.admission import Admission
from server.http.engine_client import EngineClient
from server.http.errors import error_response
from server.launch.args import ServerArgs

logger = logging.getLogger(__name__)


class Health:
    def __init__(self, args: ServerArgs, engine: EngineClient, heartbeat: ReplicaHeartbeats | None):
        self.args = args
        self.engine = engine
        self.heartbeat = heartbeat
        self.admission = Admission(args.max_queued_requests, args.max_queued_tokens)

    def stall_seconds(self) -> float:
        """How long requests have waited with no sign of progress in their replica; 0 when none wait.

        Each data-parallel replica is judged alone, so one stuck replica is not hidden by a busy one.
        """
        now, worst = time.monotonic(), 0.0
        for replica in self.engine.router.replicas:
            oldest = replica.oldest_pending_since
            if oldest is None:
                continue
            last_progress = max(oldest, replica.last_result_at)
            if self.heartbeat is not None:
                last_progress = max(last_progress, self.heartbeat[replica.index].get("last_batch_at"))
            worst = max(worst, now - last_progress)
        return worst

    def health_problem(self) -> str | None:
        """Why the server is not alive (a dead child, a stalled engine), or None when it is."""
        if self.engine.dead_reason is not None:
            return self.engine.dead_reason
        stalled = self.stall_seconds()
        if stalled > self.args.engine_stall_timeout:
            return (
                f"the engine has not finished a batch for {stalled:.1f}s while {self.engine.num_pending} requests "
                f"wait (--engine-stall-timeout {self.args.engine_stall_timeout:g})"
            )
        return None

    def readiness_problem(self) -> str | None:
        """Why a load balancer should send no new requests here now, or None."""
        problem = self.health_problem() or self.admission.closed_reason
        if problem is None and self.admission.is_full:
            problem = "the request queue is full"
        return problem

    async def drain(self) -> None:
        """Stop admitting (new requests get 503), then give admitted ones --shutdown-timeout to finish."""
        self.admission.close("the server is shutting down")
        timeout = self.args.shutdown_timeout
        logger.info("draining: %d requests in flight, waiting up to %gs", self.admission.num_requests, timeout)
        if await self.admission.wait_idle(timeout):
            logger.info("drained: every admitted request has been answered")
            return
        logger.warning("shutdown timeout: failing %d unfinished requests with 503", self.admission.num_requests)
        self.engine.fail_all("the server shut down before this request finished (--shutdown-timeout)")


def install_health_routes(app: FastAPI, health: Health) -> None:
    """GET /health (alive: no dead child, no stalled engine) and GET /ready (alive and admitting): 200 or 503."""

    @app.get("/health")
    async def alive() -> Response:
        return _probe_answer("unhealthy", health.health_problem())

    @app.get("/ready")
    async def ready() -> Response:
        return _probe_answer("not ready", health.readiness_problem())


def _probe_answer(label: str, problem: str | None) -> Response:
    return Response(status_code=200) if problem is None else error_response(f"{label}: {problem}", 503)
