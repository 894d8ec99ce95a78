"""release_free_memory hands what jemalloc keeps (as the launcher configures it) and glibc's free heap back to the OS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.launch import REPO_ROOT

JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")

# 320 MiB in blocks above every allocator's small sizes, each page written, then freed: what loading a model does
PROBE = """
import os
from processes.allocator import allocator_in_use, release_free_memory, resident_bytes
blocks = [bytearray(8 << 20) for _ in range(40)]
for block in blocks:
    block[::4096] = b"\\x01" * len(block[::4096])
del blocks
kept = resident_bytes(os.getpid())
released_by = release_free_memory()
print(allocator_in_use(), released_by, kept >> 20, resident_bytes(os.getpid()) >> 20)
"""


def _run_probe(env: dict[str, str]) -> tuple[str, str, int, int]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **env)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    allocator, released_by, kept_mb, after_mb = done.stdout.split()
    return allocator, released_by, int(kept_mb), int(after_mb)


@pytest.mark.skipif(not JEMALLOC.is_file(), reason="needs Debian's libjemalloc2")
def test_jemalloc_keeping_its_pages_gives_them_back_when_asked():
    conf = {"LD_PRELOAD": str(JEMALLOC), "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}
    allocator, released_by, kept_mb, after_mb = _run_probe(conf)
    assert allocator == released_by == "jemalloc"
    assert kept_mb - after_mb > 250, (kept_mb, after_mb)  # the freed blocks were resident until the purge


def test_glibc_is_asked_to_trim():
    allocator, released_by, _, after_mb = _run_probe({"LD_PRELOAD": ""})
    assert allocator == released_by == "glibc"
    assert after_mb < 200  # nothing of the 320 MiB is left resident
