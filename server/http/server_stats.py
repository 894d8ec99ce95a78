"""Counters of what the server refused, dropped and failed: read by /stats, ready to export as metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ServerStats:
    responses_by_status: Counter = field(
        default_factory=Counter
    )  # every answer of a pipeline route, every 401, every other route's error
    requests_aborted_by_client: int = 0  # the client left while its request was tokenized, queued or running

    def count_response(self, status: int) -> None:
        self.responses_by_status[status] += 1

    def snapshot(self) -> dict:
        by_status = self.responses_by_status
        return {
            "responses_by_status": {str(code): n for code, n in sorted(by_status.items())},
            "requests_rejected_overloaded": by_status[429],
            "requests_rejected_too_large": by_status[413],
            "requests_rejected_unauthorized": by_status[401],
            "requests_rejected_unavailable": by_status[503],
            "requests_failed_internal": by_status[500],
            "requests_aborted_by_client": self.requests_aborted_by_client,
        }
