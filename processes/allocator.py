"""Which malloc this process runs with, and handing the memory it holds free back to the OS."""

from __future__ import annotations

import ctypes
import functools
import os

# Library file name fragments of the allocators a launcher may preload, as they appear in /proc/self/maps.
_PRELOADABLE = {"libjemalloc": "jemalloc", "libtcmalloc": "tcmalloc", "libmimalloc": "mimalloc"}


def allocator_in_use() -> str:
    """'jemalloc', 'tcmalloc' or 'mimalloc' when one is mapped into this process, else 'glibc'."""
    with open("/proc/self/maps") as maps:
        mapped = maps.read()
    return next((name for fragment, name in _PRELOADABLE.items() if fragment in mapped), "glibc")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS)
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def return_free_heap() -> bool:
    """glibc's malloc_trim(0): give free pages of every arena back to the OS; False where there is no glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def resident_bytes(pid: int) -> int:
    """Resident set size of a live process from /proc/PID/statm (pages times the page size)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL


def release_free_memory() -> str:
    """Return what the running malloc holds free to the OS: jemalloc purges every arena, glibc trims its heap.

    The launcher has jemalloc keep freed pages between batches (server/launch/child_environment.py); what
    loading frees (weights before packing, temporaries) would otherwise stay resident for good.
    Returns the allocator that released, or "none" where there is no way to ask it.
    """
    allocator = allocator_in_use()
    if allocator == "jemalloc":
        mallctl = ctypes.CDLL(None).mallctl
        mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        return allocator if mallctl(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, 0) == 0 else "none"
    if allocator == "glibc" and return_free_heap():
        return allocator
    return "none"
