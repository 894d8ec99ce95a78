"""Several scheduler ranks on one CPU node share its cores instead of each taking them all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from server.launch.cpu_threads import threads_per_rank, usable_cores


@pytest.mark.parametrize(
    ("requested", "device", "local_ranks", "cores", "environ", "expected"),
    [
        (None, "cpu", 2, 2, {}, 1),  # two replicas on two cores: one thread each
        (None, "cpu", 2, 16, {}, 8),
        (None, "cpu", 3, 8, {}, 2),  # the remainder stays free (the frontend uses it)
        (None, "cpu", 4, 2, {}, 1),  # more ranks than cores: never zero
        (None, "cpu", 1, 16, {}, None),  # one rank: torch's choice
        (3, "cpu", 2, 2, {}, 3),  # --num-threads wins
        (None, "cuda", 2, 16, {}, None),  # GPU ranks: torch's choice
        (None, "cpu", 2, 16, {"OMP_NUM_THREADS": "4"}, None),  # the user's OpenMP setting wins
    ],
)
def test_threads_per_rank(requested, device, local_ranks, cores, environ, expected):
    assert threads_per_rank(requested, device, local_ranks, cores, environ) == expected


def test_usable_cores_follows_the_affinity_mask_not_the_machine():
    # a process narrowed to one core (taskset, a container's cpuset) counts one
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from server.launch.cpu_threads import usable_cores; print(usable_cores())"
    )
    narrowed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert narrowed.stdout.strip() == "1"
    assert usable_cores() == len(os.sched_getaffinity(0))
