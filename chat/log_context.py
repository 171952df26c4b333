"""Structured logs (``LOG_FORMAT=json``): one JSON object per line with the time, level, logger,
message and, where known, the request id, turn id and user id of what was being done.

Those ids live in context variables: ``RequestContextMiddleware`` sets the request id and user
id for each HTTP request, the turn runner binds its turn and user (``bind``). Log calls pass
only ids and counts as arguments, never message text or keys, so lines carry no user content.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from chat.middleware import EXEMPT_PATHS

_FIELDS = ("request_id", "turn_id", "user_id")
_context: dict[str, contextvars.ContextVar] = {
    name: contextvars.ContextVar(name, default=None) for name in _FIELDS
}
REQUEST_ID_HEADER = "X-Request-ID"


def bind(**values) -> None:
    """Set ids for everything logged from here on in this context (a task, a request)."""
    for name, value in values.items():
        _context[name].set(value)


def current() -> dict[str, object]:
    return {name: var.get() for name, var in _context.items() if var.get() is not None}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", …ids, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **current(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _request_id(given: str) -> str:
    """A proxy's id when it is a plain token (letters, digits, dashes: nothing to forge log
    lines with), else a new one."""
    if 0 < len(given) <= 64 and given.isascii() and given.replace("-", "").isalnum():
        return given
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Give each request an id (the ``X-Request-ID`` a proxy sent, if it looks like one, else a
    new one; echoed in the response) and bind it and the user's id for its log lines."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id(request.headers.get(REQUEST_ID_HEADER, ""))
        # Health checks and metrics answer without touching the session (nor the database).
        user = None if request.path in EXEMPT_PATHS else getattr(request, "user", None)
        # Not reset when the response is returned: Django logs a 4xx/5xx response after the
        # middleware chain (``django.request``), and that line belongs to this request too.
        # Each ASGI request runs in a context of its own; the next request sets its own ids.
        bind(
            request_id=request_id,
            turn_id=None,
            user_id=user.pk if user and user.is_authenticated else None,
        )
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
