"""Where the API key comes from (--api-key, --api-key-file, EMBEDSERVE_API_KEY), and the options with it hidden.

Precedence: a key given as an option (--api-key on the command line or `api_key` in --config) or read from
--api-key-file wins over the environment; giving both --api-key and --api-key-file is an error, since one
of them would be silently ignored. The file and the environment keep the key out of `ps`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.http.log_safety import REDACTED

if TYPE_CHECKING:
    from server.launch.args import ServerArgs

API_KEY_ENV = "EMBEDSERVE_API_KEY"
_MAX_KEY_FILE_BYTES = 4096  # a key, not a document: refuse to read anything bigger


def resolve_api_key(args: ServerArgs) -> None:
    """Set `args.api_key` from whichever source gives it; ValueErrors name the source, never the key."""
    if args.api_key_file is not None:
        if args.api_key is not None:
            raise ValueError("give --api-key or --api-key-file, not both")
        args.api_key = _read_key_file(args.api_key_file)
        source = f"--api-key-file {args.api_key_file}"
    elif args.api_key is not None:
        source = "--api-key"
    elif os.environ.get(API_KEY_ENV) is not None:
        args.api_key = os.environ[API_KEY_ENV]
        source = API_KEY_ENV
    else:
        return
    # The key travels in an HTTP header: a space, a control character or non-ASCII could never match.
    if not args.api_key or not all("!" <= c <= "~" for c in args.api_key):
        raise ValueError(f"the API key from {source} must be non-empty printable ASCII without spaces")


def _read_key_file(path: str) -> str:
    try:
        with Path(path).open("rb") as file:
            data = file.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"--api-key-file {path}: {error.strerror or type(error).__name__}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ValueError(f"--api-key-file {path} is larger than {_MAX_KEY_FILE_BYTES} bytes: not a key")
    try:
        # one line, as `echo KEY > file` or a secret mount writes it
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError(f"--api-key-file {path} is not ASCII text") from None


def public_options(args: ServerArgs) -> dict[str, Any]:
    """Every option as the server runs with it, secrets replaced by a marker (for /get_server_info)."""
    options = dataclasses.asdict(args)
    for f in dataclasses.fields(args):
        if f.metadata.get("secret") and options[f.name] is not None:
            options[f.name] = REDACTED
    return options
