"""OpenAI's error envelope, the exceptions that map onto it, and the 500 that tells a client nothing internal."""

from __future__ import annotations

import logging
import traceback

from fastapi.responses import JSONResponse

from server.http.log_safety import escape_for_log

logger = logging.getLogger("embedserve.errors")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """An error the client should see, with its HTTP status and the offending parameter."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.headers = headers


def error_body(message: str, status: int, param: str | None = None) -> dict:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error_response(message: str, status: int, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, status, param), status_code=status, headers=headers)


def internal_error(rid: str, where: str, detail: str) -> APIError:
    """A 500 naming only the request id; `detail` (an exception, an engine message) goes to the server's log."""
    logger.error("internal error in request %s (%s): %s", rid, escape_for_log(where), escape_for_log(detail, 4096))
    return APIError(f"internal server error (request {rid}); the server's log has the details", status=500)


def unexpected_error_response(rid: str, where: str, exc: BaseException) -> JSONResponse:
    """The answer to a bug: a generic 500; the class, message and stack are logged, never sent."""
    error = internal_error(rid, where, f"{type(exc).__name__}: {exc}")
    # The frames are our code's, not the client's: they go to the log as they are, after the escaped message.
    logger.error("request %s traceback:\n%s", rid, "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    return error_response(error.message, 500, headers={"x-request-id": rid})
