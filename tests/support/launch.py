"""Starts the real server as a subprocess on a free loopback port and stops it, checking nothing is left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS = REPO_ROOT / "configs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(
        self,
        args: list[str],
        startup_timeout: float = 120.0,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"embedserve-test-{self.port}.log"
        self._log = self.log_path.open("wb")
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT), **(env or {}))
        command = command or [sys.executable, "-m", "server.launch_server"]
        cmd = [*command, "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy(startup_timeout)
        self.children = psutil.Process(self.proc.pid).children(recursive=True)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.log()}")

    def child(self, role: str) -> psutil.Process:
        """The child process named embedserve-<role> (see processes/lifecycle.py)."""
        return next(p for p in self.children if p.name() == f"embedserve-{role}"[:15])

    def stats(self) -> dict:
        """The server's /stats counters (see server/http/server_stats.py)."""
        return httpx.get(f"{self.base_url}/stats", headers=getattr(self, "auth_headers", {}), timeout=10).json()

    def log(self) -> str:
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
