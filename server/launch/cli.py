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
    parser = argparse.ArgumentParser(prog=prog, description="Serve an embedding model over OpenAI's API.")
    add_server_flags(parser)
    return parser


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ServerArgs field on `parser`; a flag not given stays out of the namespace."""
    types = get_type_hints(ServerArgs)
    for f in dataclasses.fields(ServerArgs):
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if types[f.name] is bool:
            # --flag / --no-flag, so a command line can switch off what a --config file switched on
            parser.add_argument(
                flag(f.name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            parser.add_argument(flag(f.name), default=argparse.SUPPRESS, help=help_text)


def server_args_from_flags(flags: dict, defaults: dict | None = None) -> ServerArgs:
    """The flags given (ServerArgs field names to strings), over the --config file's values, over `defaults`,
    over ServerArgs' own defaults: one typed conversion and one validation for every command that takes them."""
    given = typed_options(flags)
    options = load_config_file(given["config"]) if given.get("config") else {}
    return ServerArgs(**{**(defaults or {}), **options, **given})


def parse_serve_args(argv: list[str] | None = None, prog: str = "python -m server.launch_server") -> ServerArgs:
    """Flags given on the command line, over the --config file's values, over the defaults."""
    return server_args_from_flags(vars(build_parser(prog).parse_args(argv)))


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
    if argv and argv[0].startswith("--") and argv[0] != "--help":
        serve(argv, prog="embedserve")  # SGLang's flags straight after the command, as `python -m` takes them
    if not argv or argv[0] != "serve":
        print(
            "usage: embedserve serve [--model-path PATH] [--host HOST] [--port PORT] ...  (see embedserve serve --help)\n"
            "       embedserve embed --input FILE --output FILE [--model-path PATH] ...  (see embedserve embed --help)"
        )
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    serve(argv[1:], prog="embedserve serve")
