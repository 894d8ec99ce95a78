"""Resident memory of the frontend and of every child process it started, as a Prometheus gauge read at scrape time."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from processes.allocator import resident_bytes

METRIC = "embedserve_process_resident_memory_bytes"
_NAME_PREFIX = "embedserve-"


def frontend_and_children() -> dict[str, int]:
    """{'frontend': pid, 'scheduler': pid, 'result': pid, ...}: this process and the live children it started."""
    processes = {"frontend": os.getpid()}
    for child in multiprocessing.active_children():
        if child.pid is not None:
            processes[child.name.removeprefix(_NAME_PREFIX)] = child.pid
    return processes


class ProcessMemoryCollector(Collector):
    """One sample per process, labelled by its role (`scheduler`, `scheduler-tp1`, `result`, `frontend`)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        processes: Callable[[], dict[str, int]] = frontend_and_children,
    ) -> None:
        self._processes = processes
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()  # names only: registering never reads /proc

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = self._family()
        for role, pid in sorted(self._processes().items()):
            try:
                gauge.add_metric([role], resident_bytes(pid))
            except OSError:  # it ended between listing and reading; its death is reported elsewhere
                continue
        yield gauge

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            METRIC, "resident set size of each embedserve process on this node, in bytes", labels=["process"]
        )
