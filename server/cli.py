"""Command lines: `embedserve serve ...` and SGLang's `python -m server.launch_server ...`, same flags."""

from __future__ import annotations

import argparse
import sys

from server.args import ServerArgs


def build_parser(prog: str = "embedserve serve") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Serve an embedding model over OpenAI's API.")
    ServerArgs.add_cli_args(parser)
    return parser


def parse_serve_args(argv: list[str] | None = None, prog: str = "python -m server.launch_server") -> ServerArgs:
    """Flags, over the --config file's values, over the defaults."""
    from server.config_file import load_config_file

    parser = build_parser(prog)
    config_path = parser.parse_known_args(argv)[0].config
    if config_path:
        parser.set_defaults(**load_config_file(config_path))
    return ServerArgs.from_cli_args(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> None:
    """The `embedserve` console command."""
    from server.launcher import main as launch_main

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "serve":
        print(
            "usage: embedserve serve [--model-path PATH] [--host HOST] [--port PORT] ...  (see embedserve serve --help)"
        )
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    launch_main(argv[1:])
