"""A neutral ``Request`` → the body of its API's request (each API's module owns its format)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import chat_completions, responses_api
from .request import Api, Request

_ENCODERS: dict[Api, Callable[[Request], dict[str, Any]]] = {
    Api.RESPONSES: responses_api.encode,
    Api.CHAT: chat_completions.encode,
}


def encode(request: Request) -> dict[str, Any]:
    """The JSON body to POST for ``request`` (``request.api`` says where)."""
    return _ENCODERS[Api(request.api)](request)
