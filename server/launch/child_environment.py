"""The environment the scheduler and result processes start with: a malloc that does not fragment, bounded caches.

Children start with multiprocessing's spawn, a fresh interpreter, so what is set in `os.environ` before they
start is what their dynamic loader and libraries see. A user's own setting of any variable here wins.
"""

from __future__ import annotations

import glob
import logging
import os
import sysconfig
from pathlib import Path

logger = logging.getLogger("embedserve")

ALLOCATOR_VARIABLE = "EMBEDSERVE_ALLOCATOR"  # auto (default) | glibc | a path to a malloc library

# glibc's heap fragments under batches of ever new sizes and keeps what it freed; these two do not
# (docs/reliability.md, "Memory"). A system jemalloc first (Debian's libjemalloc2), then the mimalloc
# that pyproject.toml installs into the virtual environment, so a machine without root still gets one.
_SYSTEM_LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/local/lib")
_PREFERRED_LIBRARIES = ("libjemalloc.so.2", "libmimalloc.so.3")
_MALLOC_NAMES = ("jemalloc", "tcmalloc", "mimalloc")  # any of them in a user's LD_PRELOAD is their choice

# oneDNN and ideep (torch's wrapper around it) each keep one entry per new matmul shape, and a batch of a
# new token count is a new shape. ideep's cache barely pays, so it is kept small. oneDNN's primitives are
# what a bfloat16 forward reuses: any bound below its default made a loaded server re-create them batch
# after batch (a fifth to a quarter of its bfloat16 throughput), while at the default the cache fills and
# then stays flat. So oneDNN's bound is set, explicitly, to its default (docs/benchmarks.md, "Memory work";
# docs/reliability.md, "Memory").
_ONEDNN_CACHE_CAPACITY = "1024"
_IDEEP_CACHE_CAPACITY = "32"

# jemalloc's default hands freed pages back to the OS within its 10 s decay even while busy: batch after batch
# of large activations then faults its pages in anew, which cost more than the allocator saved. Kept (never
# decayed), its footprint still plateaus (docs/reliability.md, "Memory"; docs/benchmarks.md, "Memory work").
_JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"


def find_malloc_library(choice: str = "auto", system_dirs: tuple[str, ...] = _SYSTEM_LIBRARY_DIRS) -> str | None:
    """The malloc library to preload for `choice`: a path, 'glibc' (none), or 'auto' (the first one present)."""
    if choice == "glibc":
        return None
    if choice != "auto":
        return choice if Path(choice).is_file() else None
    venv_libs = Path(sysconfig.get_paths()["purelib"]) / "cmeel.prefix" / "lib"
    for name in _PREFERRED_LIBRARIES:
        for directory in (*system_dirs, str(venv_libs)):
            found = glob.glob(os.path.join(directory, name))
            if found:
                return found[0]
    return None


def prepare_child_environment(environ: os._Environ | dict = os.environ) -> str:
    """Set the children's environment before they start; returns the allocator they will run with, for the log."""
    # How long libgomp's idle threads spin before sleeping trades throughput against short-request latency on a
    # small machine: on 2 cores, 100k iterations measured 0.5 ms faster on short requests than the default 300k
    # (3% less throughput), and sleeping at once (PASSIVE) cost them 3 ms (docs/benchmarks.md).
    if "OMP_WAIT_POLICY" not in environ:
        environ.setdefault("GOMP_SPINCOUNT", "100000")
    environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", _ONEDNN_CACHE_CAPACITY)
    environ.setdefault("LRU_CACHE_CAPACITY", _IDEEP_CACHE_CAPACITY)  # ideep's cache, read by torch
    preloaded = environ.get("LD_PRELOAD", "")
    if any(name in preloaded for name in _MALLOC_NAMES):
        return f"{preloaded} (LD_PRELOAD set by the user)"
    choice = environ.get(ALLOCATOR_VARIABLE, "auto")
    library = find_malloc_library(choice)
    if library is None:
        if choice not in ("auto", "glibc"):
            logger.warning("%s=%s: no such file; the children use glibc's malloc", ALLOCATOR_VARIABLE, choice)
        return "glibc"
    environ["LD_PRELOAD"] = f"{library} {preloaded}".strip()
    if "jemalloc" in Path(library).name:
        environ.setdefault("MALLOC_CONF", _JEMALLOC_CONF)
    return library
