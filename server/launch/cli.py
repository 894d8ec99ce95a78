"""Command lines: `embedserve serve ...` and SGLang's `python -m server.launch_server ...`, same flags."""

from __future__ import annotations

import argparse
import sys

from server.launch.args import ServerArgs, ServerArgsError
from server.launch.config_file import load_config_file


def build_parser(prog: str = "embedserve serve") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Serve an embedding model over OpenAI's API.")
    ServerArgs.add_cli_args(parser)
    return parser


def parse_with_config(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Flags, over the --config file's values, over the parser's defaults."""
    config_path = parser.parse_known_args(argv)[0].config
    if config_path:
        parser.set_defaults(**load_config_file(config_path))
    return parser.parse_args(argv)


def parse_serve_args(argv: list[str] | None = None, prog: str = "python -m server.launch_server") -> ServerArgs:
    return ServerArgs.from_cli_args(parse_with_config(build_parser(prog), argv))


def serve(argv: list[str] | None = None) -> None:
    """Parse the flags, run the server in the foreground, and exit with its code."""
    try:
        args = parse_serve_args(argv)
    except ServerArgsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    # Imported only now: the launcher loads torch and the HTTP app, which --help and a bad flag never need.
    from server.launch.launcher import launch_server

    sys.exit(launch_server(args))


def main(argv: list[str] | None = None) -> None:
    """The `embedserve` console command."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "serve":
        print(
            "usage: embedserve serve [--model-path PATH] [--host HOST] [--port PORT] ...  (see embedserve serve --help)\n"
            "       embedserve embed --input FILE --output FILE [--model-path PATH] ...  (see embedserve embed --help)"
        )
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    serve(argv[1:])
