"""OpenAI-style error answers: the exception that carries one, and the bodies it sends."""

from __future__ import annotations

from typing import Any


class Done(Exception):
    """Internal: the exchange is over (answered already, or the client left)."""


class HTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: list | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or []


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def required_string(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        raise missing_parameter(f"{where}.{key}")
    return value


def missing_parameter(param: str) -> HTTPError:
    return HTTPError(
        400,
        error_body(
            f"Missing required parameter: '{param}'.",
            "invalid_request_error",
            "missing_required_parameter",
            param,
        ),
    )


def invalid_request(message: str, param: str | None, code: str | None = None) -> HTTPError:
    return HTTPError(400, error_body(message, "invalid_request_error", code, param))
