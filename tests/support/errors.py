"""Assertions on OpenAI's error envelope, shared by the HTTP tests."""

from __future__ import annotations

import httpx


def assert_error_envelope(response: httpx.Response, status: int, fragment: str = "") -> dict:
    """The response is `status` in OpenAI's envelope and its message holds `fragment`; returns the error object."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == status, error
    assert fragment in error["message"], error["message"]
    return error
