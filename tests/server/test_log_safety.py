"""Client strings reach the log escaped onto one line and cut; the API key never reaches it."""

from __future__ import annotations

import logging

import pytest

from server.http.log_safety import MAX_LOGGED_CHARS, escape_for_log, install_log_redaction


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("/v1/embeddings", "/v1/embeddings"),
        ("/x\nFORGED", "/x\\x0aFORGED"),
        ("a\r\tb\x00", "a\\x0d\\x09b\\x00"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("line\u2028sep\x85", "line\\u2028sep\\x85"),
        ("caf\u00e9 \u4e2d\u6587", "caf\u00e9 \u4e2d\u6587"),  # printable Unicode stays readable
        ("\\x0a", "\\\\x0a"),  # a literal backslash is doubled: it cannot pass for an escape
        ("\U000e0001", "\\U000e0001"),
    ],
)
def test_non_printable_characters_are_escaped(text, logged):
    assert escape_for_log(text) == logged


def test_long_strings_are_cut():
    assert escape_for_log("x" * (MAX_LOGGED_CHARS + 10)) == "x" * MAX_LOGGED_CHARS + "...(10 more characters)"


def test_redaction_covers_every_logger_and_does_not_stack(caplog):
    previous = logging.getLogRecordFactory()
    try:
        install_log_redaction("k3y-123")
        install_log_redaction("k3y-123")  # a second app in one process
        with caplog.at_level(logging.INFO):
            logging.getLogger("uvicorn.error").info("path /%s and %s", "k3y-123", "other")
        assert caplog.records[-1].getMessage() == "path /<redacted> and other"
        assert logging.getLogRecordFactory().inner is previous
    finally:
        logging.setLogRecordFactory(previous)
