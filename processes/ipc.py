"""The ipc:// addresses the processes of one server use, under a private temporary folder."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class IpcAddresses:
    folder: str
    scheduler: str  # frontend -> scheduler (rank 0)
    result: str  # scheduler -> result process
    frontend: str  # result process -> frontend

    @classmethod
    def create(cls) -> IpcAddresses:
        folder = tempfile.mkdtemp(prefix="embedserve-")
        return cls(folder, *(f"ipc://{Path(folder) / name}" for name in ("scheduler", "result", "frontend")))

    def scheduler_for(self, dp_index: int) -> str:
        """Data-parallel replica `dp_index`'s rank 0 (replica 0 keeps the plain address)."""
        return self.scheduler if dp_index == 0 else f"{self.scheduler}-dp{dp_index}"

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
