"""The ``#directives`` a user types in a message (the package docstring lists them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DIRECTIVE = re.compile(
    r"(?<!\S)#(chunks|delay|fault|reasoning|usage|call|loop|badargs|wrongargs)(?:=(\S*))?(?!\S)"
)
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FAULT_WORDS = {"cut", "malformed", "timeout"}


@dataclass(slots=True)
class Directives:
    chunks: int | None = None
    delay: float | None = None  # seconds
    fault: str | None = None  # "cut", "malformed", "timeout", or an HTTP status like "429"
    fault_model: str | None = None  # "#fault=503@gpt-5.4": only requests for that model fail
    reasoning: bool = False
    usage: str | None = None  # "chat" or "responses"
    calls: list[str] = field(default_factory=list)  # tool names, in order, repeats allowed
    loop: bool = False
    badargs: bool = False
    wrongargs: str | None = None  # "types" or "missing"


def parse_directives(text: str) -> tuple[Directives, str]:
    """The directives in ``text``, and the text without them. Bad values are dropped."""
    found = Directives()
    for match in _DIRECTIVE.finditer(text):
        name, value = match.group(1), match.group(2) or ""
        if name == "chunks" and value.isdigit():
            found.chunks = max(1, min(int(value), 100_000))
        elif name == "delay" and value.isdigit():
            found.delay = min(int(value), 60_000) / 1000
        elif name == "fault":
            value, _, model = value.partition("@")
            if value in _FAULT_WORDS or (value.isdigit() and 400 <= int(value) <= 599):
                found.fault, found.fault_model = value, model or None
        elif name == "reasoning":
            found.reasoning = True
        elif name == "usage" and value in ("chat", "responses"):
            found.usage = value
        elif name == "call" and _TOOL_NAME.fullmatch(value):
            found.calls.append(value)
        elif name == "loop":
            found.loop = True
        elif name == "badargs":
            found.badargs = True
        elif name == "wrongargs":
            found.wrongargs = "missing" if value == "missing" else "types"
    cleaned = _DIRECTIVE.sub("", text)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return found, cleaned
