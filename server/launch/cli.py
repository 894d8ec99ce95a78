"""Command lines: `embedserve serve ...` and SGLang's `python -m server.launch_server ...`, same flags."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import get_type_hints

from server.launch.arg_rules import flag
from server.launch.args import ServerArgs, ServerArgsError, typed_options
from server.launch.config_file import load_config_file


def build_parser(prog: str = "embedserve serve") -> argparse.ArgumentParser:
    """One flag per ServerArgs field. Values stay strings and defaults stay out (SUPPRESS): the namespace holds
    exactly the flags given, for the typed conversion that flags and --config files share."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve an embedding model over OpenAI's API.", argument_default=argparse.SUPPRESS
    )
    types = get_type_hints(ServerArgs)
    for f in dataclasses.fields(ServerArgs):
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if types[f.name] is bool:
            # --flag / --no-flag, so a command line can switch off what a --config file switched on
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag(f.name), help=help_text)
    return parser


def parse_serve_args(argv: list[str] | None = None, prog: str = "python -m server.launch_server") -> ServerArgs:
    """Flags given on the command line, over the --config file's values, over the defaults."""
    flags = typed_options(vars(build_parser(prog).parse_args(argv)))
    options = load_config_file(flags["config"]) if flags.get("config") else {}
    return ServerArgs(**{**options, **flags})


def serve(argv: list[str] | None = None, prog: str = "python -m server.launch_server") -> None:
    """Parse the flags, run the server in the foreground, and exit with its code."""
    try:
        args = parse_serve_args(argv, prog)
    except ServerArgsError as error:
        # argparse's own form and exit code 2, without its page of usage burying the one line that matters
        build_parser(prog).exit(2, f"{prog}: error: {error}\n")
    # Imported only now: the launcher loads torch and the HTTP app, which --help and a bad flag never need.
    from server.launch.launcher import launch_server

    sys.exit(launch_server(args))


def main(argv: list[str] | None = None) -> None:
    """The `embedserve` console command."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "serve":
        print(
            "usage: embedserve serve [--model-path PATH] [--host HOST] [--port PORT] ...  (see embedserve serve --help)"
        )
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    serve(argv[1:], prog="embedserve serve")
