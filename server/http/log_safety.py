"""What keeps the logs honest: client strings escaped onto one line, and the API key never written out."""

from __future__ import annotations

import logging

# A path or message longer than this is cut in the log: a client must not be able to flood it.
MAX_LOGGED_CHARS = 512
REDACTED = "<redacted>"


def escape_for_log(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` with every non-printable character (newlines, ANSI escapes, U+2028...) written as a Python escape.

    A backslash is doubled, so an escape in the log always stands for one character the client sent and
    a client cannot spell out a fake one.
    """
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    plain = text.isprintable() and "\\" not in text
    escaped = text if plain else "".join(_escape_char(c) for c in text)
    return f"{escaped}...({cut} more characters)" if cut > 0 else escaped


def _escape_char(c: str) -> str:
    if c == "\\":
        return "\\\\"
    if c.isprintable():
        return c
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class _RedactingRecordFactory:
    """Builds every log record of the process with `secret` replaced, whoever logs it (ours, uvicorn's, a library's)."""

    def __init__(self, secret: str, inner):
        self.secret = secret
        self.inner = inner

    def __call__(self, *args, **kwargs) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, REDACTED), None
        return record


def install_log_redaction(secret: str | None) -> None:
    """From now on no log record of this process contains `secret` (a safety net: nothing logs the key)."""
    if not secret:
        return
    factory = logging.getLogRecordFactory()
    while isinstance(factory, _RedactingRecordFactory):  # a second app in one process replaces, never stacks
        factory = factory.inner
    logging.setLogRecordFactory(_RedactingRecordFactory(secret, factory))
