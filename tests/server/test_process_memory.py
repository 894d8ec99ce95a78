"""/metrics exports every process's resident memory: the frontend, the scheduler and the result process."""

from __future__ import annotations

import multiprocessing
import subprocess
import time

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.http.process_memory import METRIC, ProcessMemoryCollector, frontend_and_children
from tests.server.test_metrics import scrape


def _resident_by_role(samples: dict) -> dict[str, float]:
    return {dict(labels)["process"]: v for (name, labels), v in samples.items() if name == METRIC}


def test_metrics_report_each_process_resident_memory(preset_server):
    reported = _resident_by_role(scrape(preset_server))
    assert set(reported) == {"frontend", "scheduler", "result"}, reported
    actual = {
        "frontend": psutil.Process(preset_server.proc.pid).memory_info().rss,
        "scheduler": preset_server.child("scheduler").memory_info().rss,
        "result": preset_server.child("result").memory_info().rss,
    }
    for role, rss in actual.items():
        # read a moment apart from psutil's figure: equal within what an idle process drifts by
        assert abs(reported[role] - rss) < 0.05 * rss, (role, reported[role], rss)
    # The scheduler holds the model and torch: it is the largest, and all three are real processes.
    assert reported["scheduler"] > reported["result"] > 20 * 2**20


def _sleep_when_started(started, seconds: float) -> None:
    started.set()
    time.sleep(seconds)


def test_children_are_named_by_role_and_a_vanished_process_is_skipped():
    spawn = multiprocessing.get_context("spawn")
    started = spawn.Event()
    child = spawn.Process(target=_sleep_when_started, args=(started, 30), name="embedserve-scheduler-tp1")
    child.start()
    # A spawned child grows while it imports; once it sleeps, its resident memory holds still.
    assert started.wait(timeout=60)
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid no longer exists
    try:
        processes = frontend_and_children()
        assert processes["scheduler-tp1"] == child.pid and "frontend" in processes
        before = psutil.Process(child.pid).memory_info().rss
        registry = CollectorRegistry()
        ProcessMemoryCollector(registry, processes=lambda: {**processes, "ended": gone.pid})
        families = list(text_string_to_metric_families(generate_latest(registry).decode()))
        roles = {sample.labels["process"]: sample.value for sample in families[0].samples}
        assert set(roles) == {"frontend", "scheduler-tp1"}, roles
        after = psutil.Process(child.pid).memory_info().rss
        assert min(before, after) - 2**20 < roles["scheduler-tp1"] < max(before, after) + 2**20  # it only sleeps
    finally:
        child.kill()
        child.join()
