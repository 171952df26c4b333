"""API request bodies checked with the chat's own parameter specs (``services.parameters``).

Each wire field the chat also offers is turned into the form string the chat's validator reads
(``parameters.form_values``) and checked by ``parameters.validate``: one set of ranges, choices
and messages for both. A failure is a 400 naming the wire field in ``param``. Fields the chat
does not offer are passed on untouched: the gateway judges them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chat.api.errors import ApiError
from chat.services import parameters
from chat.upstream.request import Api

RESPONSES, CHAT = Api.RESPONSES.value, Api.CHAT.value


def _get(path: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    def read(body: dict[str, Any]) -> tuple[bool, Any]:
        value: Any = body
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return False, None
            value = value[part]
        return True, value

    return read


# spec name → wire fields (dotted paths) that carry it, per API.
_WIRE: dict[str, dict[str, tuple[str, ...]]] = {
    RESPONSES: {
        "temperature": ("temperature",),
        "top_p": ("top_p",),
        "top_k": ("top_k",),
        "repetition_penalty": ("repetition_penalty",),
        "seed": ("seed",),
        "max_output_tokens": ("max_output_tokens",),
        "truncation": ("truncation",),
        "reasoning_effort": ("reasoning.effort",),
        "reasoning_summary": ("reasoning.summary",),
        "parallel_tool_calls": ("parallel_tool_calls",),
        "store": ("store",),
        "metadata": ("metadata",),
        "tool_choice": ("tool_choice",),
        "response_format": ("text.format.type",),
    },
    CHAT: {
        "temperature": ("temperature",),
        "top_p": ("top_p",),
        "presence_penalty": ("presence_penalty",),
        "frequency_penalty": ("frequency_penalty",),
        "seed": ("seed",),
        "logit_bias": ("logit_bias",),
        "max_output_tokens": ("max_completion_tokens", "max_tokens"),
        "reasoning_effort": ("reasoning_effort",),
        "stop": ("stop",),
        "n": ("n",),
        "parallel_tool_calls": ("parallel_tool_calls",),
        "tool_choice": ("tool_choice",),
        "response_format": ("response_format.type",),
    },
}

_TYPE_WORDS = {
    "float": "a number",
    "int": "an integer",
    "choice": "a string",
    "bool": "a boolean",
    "stop": "a string or an array of strings",
    "json_map": "an object",
    "key_value": "an object of strings",
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "choice":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "stop":
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(s, str) for s in value)
        )
    if kind == "json_map":
        return isinstance(value, dict)
    if kind == "key_value":
        return isinstance(value, dict) and all(
            isinstance(v, str) and isinstance(k, str) and "=" not in k and "\n" not in k + v
            for k, v in value.items()
        )
    return True


def _require(body: dict[str, Any], api: str) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError(
            400,
            "You must provide a model parameter.",
            param="model",
            code="missing_required_parameter",
        )
    if api == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(
                400, "'messages' must be a non-empty array.", param="messages", code="invalid_value"
            )
    else:
        given = body.get("input")
        if not isinstance(given, str | list):
            raise ApiError(
                400,
                "'input' must be a string or an array of input items.",
                param="input",
                code="invalid_value",
            )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be a boolean.", param="stream", code="invalid_type")
    previous = body.get("previous_response_id")
    if previous is not None and (api == CHAT or not isinstance(previous, str)):
        raise ApiError(
            400,
            "'previous_response_id' must be a string (Responses API only).",
            param="previous_response_id",
            code="invalid_value",
        )
    return model


def parse_body(raw: bytes, api: str) -> dict[str, Any]:
    """The request's JSON object, checked. Raises :class:`ApiError` (400)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    _require(body, api)
    check_parameters(body, api)
    return body


def check_parameters(body: dict[str, Any], api: str) -> None:
    form: dict[str, str] = {}
    wire_of: dict[str, str] = {}
    for name, paths in _WIRE[api].items():
        for path in paths:
            found, value = _get(path)(body)
            if not found or value is None:
                continue
            spec = parameters.SPECS_BY_NAME[name]
            if name == "tool_choice" and isinstance(value, dict):
                continue  # a named function: the gateway checks it against the tools sent
            if name == "response_format" and value == "json_schema":
                continue  # the schema is the gateway's to judge (strict mode and all)
            if not _type_ok(spec.kind, value):
                raise ApiError(
                    400,
                    f"'{path}' must be {_TYPE_WORDS[spec.kind]}.",
                    param=path,
                    code="invalid_type",
                )
            text = parameters.form_values({name: value}).get(name, "")
            if spec.kind in ("choice", "bool") or name == "tool_choice":
                text = text or str(value)
            if isinstance(value, list | dict) and not value:
                continue
            form[name], wire_of[name] = text, path
    _, errors = parameters.validate(form, api)
    errors.pop("response_schema", None)
    for name, message in errors.items():
        raise ApiError(400, message, param=wire_of.get(name, name), code="invalid_value")
