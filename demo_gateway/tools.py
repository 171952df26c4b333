"""Function tools: which are offered, which get called, and their deterministic arguments."""

from __future__ import annotations

import json
from typing import Any

from demo_gateway.directives import Directives
from demo_gateway.errors import invalid_request, missing_parameter, required_string

_BAD_ARGUMENTS = '{"expression": "6*7"'  # the closing brace is missing


def offered_tools(body: dict[str, Any], api: str) -> dict[str, dict[str, Any]]:
    """Function tools of the request, name → parameters schema, in order. Responses tools are
    ``{"type": "function", "name", "parameters"}``; Chat ones nest those in ``"function"``."""
    tools = body.get("tools")
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise invalid_request(
            "Invalid type for 'tools': expected an array.", "tools", "invalid_type"
        )
    offered: dict[str, dict[str, Any]] = {}
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue  # built-in tools (web search…) are accepted and never called
        where = f"tools[{position}]"
        if api == "chat":
            function = tool.get("function")
            if not isinstance(function, dict):
                raise missing_parameter(f"{where}.function")
            tool, where = function, f"{where}.function"
        name = required_string(tool, "name", where)
        parameters = tool.get("parameters")
        offered[name] = parameters if isinstance(parameters, dict) else {}
    return offered


def requested_tool_choice(
    body: dict[str, Any], offered: dict[str, dict[str, Any]]
) -> tuple[str, str]:
    """("none" | "auto" | "required" | "named", tool name or "")."""
    choice = body.get("tool_choice")
    if choice is None or choice == "auto":
        return "auto", ""
    if choice in ("none", "required"):
        if choice == "required" and not offered:
            raise invalid_request(
                "Tool choice 'required' must be specified with 'tools' parameter.", "tool_choice"
            )
        return choice, ""
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(name, str) and name in offered:
            return "named", name
        raise invalid_request(
            f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice"
        )
    if isinstance(choice, dict):
        return "auto", ""  # allowed_tools, built-in tool types…: the demo lets the model decide
    raise invalid_request(
        f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
        "tool_choice",
        "invalid_value",
    )


def call_names(
    directives: Directives,
    offered: dict[str, dict[str, Any]],
    choice: tuple[str, str],
    *,
    answered: bool,
    parallel: bool,
) -> list[str]:
    """The tools this response calls (empty: it answers in text)."""
    mode, named = choice
    if mode == "none":
        return []
    if mode == "named":
        return [named]
    wanted = [name for name in directives.calls if name in offered]
    if mode == "required":
        wanted = wanted or [next(iter(offered))]
    elif answered and not directives.loop:
        wanted = []
    return wanted[:1] if not parallel else wanted


def _sample(name: str, schema: Any) -> Any:
    """A valid value for ``schema``, deterministic."""
    schema = schema if isinstance(schema, dict) else {}
    if name == "expression":
        return "6*7"
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _sample(name, schema[key][0])
    return {
        "string": "demo",
        "number": 2.5,
        "integer": 3,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }.get(_schema_type(schema), "demo")


def _wrong_sample(schema: Any) -> Any:
    """A value of the wrong type for ``schema``."""
    kind = _schema_type(schema if isinstance(schema, dict) else {})
    return "demo" if kind in ("number", "integer", "array", "object", "boolean") else 42


def _schema_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and isinstance(schema.get("properties"), dict):
        kind = "object"
    return kind if isinstance(kind, str) else None


def tool_arguments(parameters: dict[str, Any], directives: Directives) -> str:
    """The arguments string for a call of a tool with this ``parameters`` schema."""
    if directives.badargs:
        return _BAD_ARGUMENTS
    if directives.wrongargs == "missing":
        return "{}"
    properties = parameters.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    if directives.wrongargs:
        if not properties:
            return json.dumps({"unexpected": 42})
        return json.dumps({key: _wrong_sample(value) for key, value in properties.items()})
    return json.dumps({key: _sample(key, value) for key, value in properties.items()})
