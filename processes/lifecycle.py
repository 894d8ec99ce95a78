"""What every child process does first: logging, signal handling, and dying with its parent."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection, wait


def _exit_when_parent_dies() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])  # blocks in the kernel; wakes only when the parent is gone
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _set_process_name(name: str) -> None:
    """Name the process for ps/top/psutil (Linux comm name, 15 bytes at most); a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def init_child_process(role: str, log_level: str) -> None:
    _set_process_name(f"embedserve-{role}"[:15])
    # Ctrl-C, and SIGTERM from a supervisor or `timeout`, may reach the whole process group; the launcher
    # alone decides when children stop (it may still need them to finish in-flight work), and kills them then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level.upper(), format=f"%(asctime)s [{role}] %(levelname)s %(name)s: %(message)s")
    _exit_when_parent_dies()


def report_ready(conn: Connection, info: dict | None = None) -> None:
    conn.send(("ready", info or {}))
    conn.close()


def report_failure(conn: Connection, error: BaseException) -> None:
    conn.send(("error", f"{type(error).__name__}: {error}"))
    conn.close()
