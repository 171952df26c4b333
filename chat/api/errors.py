"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` and its status.

The messages are English and not marked for translation: API clients parse them (the views run
under ``translation.override("en")`` so the checks shared with the chat answer in English too).
"""

from __future__ import annotations

import json

from django.http import HttpResponse

# Status → OpenAI's error type, which the official SDKs map to their exception classes.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout",
}


class ApiError(Exception):
    """Raised anywhere below the views; the view turns it into :func:`error_response`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after


def error_body(error: ApiError) -> bytes:
    payload = {
        "error": {
            "message": error.message,
            "type": _TYPES.get(error.status, "api_error"),
            "param": error.param,
            "code": error.code,
        }
    }
    return json.dumps(payload).encode()


def error_response(error: ApiError) -> HttpResponse:
    response = HttpResponse(error_body(error), status=error.status, content_type="application/json")
    if error.retry_after is not None:
        response["Retry-After"] = str(max(1, error.retry_after))
    return response
