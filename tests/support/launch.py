"""The one launcher: starts the real server (or a worker node) on a free loopback port, waits for it, stops it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.support.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS = REPO_ROOT / "configs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """`python -m server.launch_server ARGS` (or `command ARGS`), its output in a log file.

    Ready once /health answers 200, or, for a process without HTTP (a worker node), once `ready_log_line`
    appears in its log. The constructor waits for that unless `wait=False` (then call `wait_ready`, e.g. after
    starting a second node that this one needs). Usable as a context manager that stops it on exit.
    """

    def __init__(
        self,
        args: list[str],
        startup_timeout: float = 300.0,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_log_line: str | None = None,
        wait: bool = True,
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"embedserve-test-{self.port}.log"
        self._log = self.log_path.open("wb")
        # Row buckets are not built at startup in tests: seconds per server, and nothing a test checks through one.
        defaults = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "EMBEDSERVE_WARMUP_ROW_BUCKETS": "0"}
        env = {**os.environ, **defaults, **(env or {})}
        command = command or [sys.executable, "-m", "server.launch_server"]
        cmd = [*command, "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.ready_log_line = ready_log_line
        self.children: list[psutil.Process] = []
        if wait:
            self.wait_ready(startup_timeout)

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Wait until it is ready, then note its child processes; stop it and raise if it exits or times out."""
        line = self.ready_log_line
        ready = self._is_healthy if line is None else lambda: self._has_logged(line)
        try:
            wait_until(ready, timeout, 0.2, lambda: f"the server to start; its log:\n{self.log()}")
        except TimeoutError:
            self.stop()
            raise
        self.children = psutil.Process(self.proc.pid).children(recursive=True)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _check_running(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")

    def _is_healthy(self) -> bool:
        self._check_running()
        try:
            return self.health().status_code == 200
        except httpx.HTTPError:
            return False

    def _has_logged(self, line: str) -> bool:
        self._check_running()
        return line in self.log()

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.base_url}/health", timeout=5)

    def child(self, role: str) -> psutil.Process:
        """The child process named embedserve-<role> (see processes/lifecycle.py)."""
        return next(p for p in self.children if p.name() == f"embedserve-{role}"[:15])

    def stats(self) -> dict:
        """The server's /stats counters (see server/http/server_stats.py)."""
        return httpx.get(f"{self.base_url}/stats", headers=getattr(self, "auth_headers", {}), timeout=10).json()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the launcher, wait for it, and return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code

    def leftover_processes(self) -> list[psutil.Process]:
        gone, alive = psutil.wait_procs(self.children, timeout=10)
        return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
