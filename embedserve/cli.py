"""The `embedserve` console command: `embedserve embed ...` embeds files; everything else is the server's command."""

from __future__ import annotations

import sys

from server.launch.cli import main as server_main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "embed":
        from embedserve.bulk.command import run_embed_command

        sys.exit(run_embed_command(argv[1:]))
    server_main(argv)
