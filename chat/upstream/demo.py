"""Built-in demo gateway: a small OpenAI-compatible server, as a plain ASGI app (no framework).

It speaks the same wire format as the real gateway (``/v1/models``, ``/v1/responses`` and
``/v1/chat/completions``, streamed or not, ``previous_response_id``, reasoning, both usage
schemas, function tools, ``n`` choices) with deterministic answers, so Switchboard works offline
and tests run the real HTTP client against it. Serve it alone with ``python -m chat.upstream.demo
--port 9100`` or ``daphne chat.upstream.demo:application``, or mount it under any prefix: it
matches on the end of the path.

Directives in the *last user message of the whole conversation* (including the history behind a
``previous_response_id``) drive it, and are removed from the echoed text. So a follow-up request
that only carries tool results still obeys the message that started the tool-call loop.

``#chunks=N``      answer in exactly N chunks (longer answers get filler paragraphs)
``#delay=MS``      pause MS milliseconds between chunks (argument pieces of a tool call too)
``#reasoning``     stream a reasoning summary first (model ``demo-reasoner`` always does)
``#usage=chat``    report usage as ``prompt_tokens…``; ``#usage=responses`` as ``input_tokens…``
``#fault=401|429|500|…``  answer with that HTTP status and an OpenAI-style error body
``#fault=cut``     stream a few deltas, then end the stream without finishing the answer
``#fault=malformed``  stream a few deltas, then a line that is not JSON, then the rest
``#fault=timeout`` stream a couple of deltas, then go silent (until the client hangs up)
``#call=NAME``     call the offered function tool NAME instead of answering; repeat the directive
                   for parallel calls in one response. Only until the first tool result for this
                   user message arrives: then the answer quotes the results, one line per call
                   ("The tool NAME returned: RESULT.").
``#loop``          keep calling the same tool(s) after every result (never answers in text)
``#badargs``       the arguments are not valid JSON (``{"expression": "6*7"`` without its brace)
``#wrongargs``     valid JSON of the wrong types (string → 42, number → "demo", …);
                   ``#wrongargs=missing`` leaves out every property (``{}``)

Tool calls follow ``tool_choice`` like OpenAI: ``"none"`` never calls; ``"required"`` calls the
``#call`` tools, else the first offered tool; a named function calls that tool. A forced choice
(``required`` or named) forces a call on *every* request that carries it, results or not, so send
it on the first request of a loop only. ``parallel_tool_calls: false`` keeps only the first call.
Arguments are deterministic, built from the tool's JSON schema: a property named ``expression``
gets ``"6*7"``; otherwise string → ``"demo"``, number → 2.5, integer → 3, boolean → true, enum →
its first value, array → [], object → {}. Tool calls are never cut by the output-token limit.

Tool results are checked like OpenAI does: a result for an unknown call id, or a call left without
its result, is an HTTP 400 ``invalid_request_error``.

Chat Completions ``n`` (1 to 128) returns that many choices; when ``n > 1`` each answer starts with
"Choice K of N." and usage counts all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import re
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODELS", "DemoGateway", "application", "main", "make_app"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MODELS = ("demo-chat", "demo-reasoner", "gpt-5.4", "gpt-5.4-mini")
REASONING_MODELS = frozenset({"demo-reasoner"})

_MAX_BODY = 8 * 1024 * 1024
_MAX_CHOICES = 128
_HANG_SECONDS = 3600.0
_FAULT_AFTER = {"cut": 3, "malformed": 3, "timeout": 2}  # deltas sent before the fault
_KEEPALIVE_EVERY = 20  # deltas between SSE comment lines (they exercise clients' parsers)
_ARGUMENT_PIECES = 4  # a tool call's arguments stream in about this many pieces
_ROUTES = (
    ("/v1/models", "models"),
    ("/v1/responses", "responses"),
    ("/v1/chat/completions", "chat"),
    ("/v1/_demo/requests", "requests"),
)
_DIRECTIVE = re.compile(
    r"(?<!\S)#(chunks|delay|fault|reasoning|usage|call|loop|badargs|wrongargs)(?:=(\S*))?(?!\S)"
)
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FAULT_WORDS = {"cut", "malformed", "timeout"}
_BAD_ARGUMENTS = '{"expression": "6*7"'  # the closing brace is missing
_HTTP_FAULTS: dict[int, tuple[str, str, str | None]] = {
    401: (
        "Incorrect API key provided. You can find your API key in the demo console.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    429: (
        "Rate limit reached for requests. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
}


# --- what the user asked for ----------------------------------------------------------------


@dataclass(slots=True)
class Directives:
    chunks: int | None = None
    delay: float | None = None  # seconds
    fault: str | None = None  # "cut", "malformed", "timeout", or an HTTP status like "429"
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
        elif name == "fault" and (
            value in _FAULT_WORDS or (value.isdigit() and 400 <= int(value) <= 599)
        ):
            found.fault = value
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


def _text_of(content: Any) -> str:
    """Plain text of a message's content: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


# Conversation messages are plain dicts: {"role", "content"}, plus "tool_calls" (a list of
# {"call_id", "name", "arguments"}) on an assistant message that called tools, and "call_id" on a
# {"role": "tool"} message carrying one result. Both APIs are read into this one shape.


def _messages_from_input(value: Any) -> list[Message] | None:
    """Conversation messages from a Responses ``input`` (None when it is not usable)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        return None
    messages: list[Message] = []
    for position, item in enumerate(value):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and "role" in item:
            messages.append({"role": str(item["role"]), "content": _text_of(item.get("content"))})
        elif kind == "function_call":
            call = {
                "call_id": _required(item, "call_id", f"input[{position}]"),
                "name": _required(item, "name", f"input[{position}]"),
                "arguments": str(item.get("arguments") or ""),
            }
            previous = messages[-1] if messages else None
            if previous and previous["role"] == "assistant" and previous.get("tool_calls"):
                previous["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = _required(item, "call_id", f"input[{position}]")
            output = item.get("output")
            messages.append({"role": "tool", "call_id": call_id, "content": _text_of(output)})
        # Item references and other item types are not modelled; they do not count as turns.
    return messages


def _messages_from_chat(raw: list[Any]) -> list[Message]:
    """Conversation messages from Chat Completions ``messages``, validated like OpenAI does."""
    messages: list[Message] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _HTTPError(
                400,
                _error_body(
                    f"Invalid type for 'messages[{position}]': expected an object.",
                    "invalid_request_error",
                    "invalid_type",
                    f"messages[{position}]",
                ),
            )
        role = str(item.get("role"))
        message: Message = {"role": role, "content": _text_of(item.get("content"))}
        if role == "assistant" and isinstance(item.get("tool_calls"), list) and item["tool_calls"]:
            calls = []
            for number, call in enumerate(item["tool_calls"]):
                where = f"messages[{position}].tool_calls[{number}]"
                call = call if isinstance(call, dict) else {}
                function = call.get("function")
                if not isinstance(function, dict):
                    raise _missing(f"{where}.function")
                calls.append(
                    {
                        "call_id": _required(call, "id", where),
                        "name": _required(function, "name", f"{where}.function"),
                        "arguments": str(function.get("arguments") or ""),
                    }
                )
            message["tool_calls"] = calls
        elif role == "tool":
            message["call_id"] = _required(item, "tool_call_id", f"messages[{position}]")
        messages.append(message)
    _check_chat_tool_messages(messages)
    return messages


def _required(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        raise _missing(f"{where}.{key}")
    return value


def _missing(param: str) -> _HTTPError:
    return _HTTPError(
        400,
        _error_body(
            f"Missing required parameter: '{param}'.",
            "invalid_request_error",
            "missing_required_parameter",
            param,
        ),
    )


def _invalid(message: str, param: str | None, code: str | None = None) -> _HTTPError:
    return _HTTPError(400, _error_body(message, "invalid_request_error", code, param))


def _check_chat_tool_messages(messages: list[Message]) -> None:
    """Chat rules: tool messages answer the assistant message just before them, all its calls."""
    waiting: list[str] = []  # call ids of the last assistant tool_calls still without a result
    asked_at: int | None = None
    for position, message in enumerate(messages):
        if message["role"] == "tool":
            if asked_at is None:
                raise _invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{position}].role",
                )
            if message["call_id"] not in waiting:
                raise _invalid(
                    f"Invalid parameter: 'tool_call_id' of '{message['call_id']}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{position}].tool_call_id",
                )
            waiting.remove(message["call_id"])
            continue
        _check_answered(waiting, asked_at)
        asked_at = None
        if message.get("tool_calls"):
            waiting = [call["call_id"] for call in message["tool_calls"]]
            asked_at = position
    _check_answered(waiting, asked_at)


def _check_answered(waiting: list[str], asked_at: int | None) -> None:
    if asked_at is not None and waiting:
        raise _invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(waiting),
            f"messages.[{asked_at}].role",
        )


def _check_responses_tool_outputs(conversation: list[Message]) -> None:
    """Responses rules: every output answers a known call, every call gets its output."""
    called: list[str] = []
    answered: set[str] = set()
    for message in conversation:
        called.extend(call["call_id"] for call in message.get("tool_calls") or ())
        if message["role"] == "tool":
            if message["call_id"] not in called:
                raise _invalid(
                    "No tool call found for function call output with call_id "
                    f"{message['call_id']}.",
                    "input",
                )
            answered.add(message["call_id"])
    for call_id in called:
        if call_id not in answered:
            raise _invalid(f"No tool output found for function call {call_id}.", "input")


def _message_words(message: Message) -> int:
    words = _words(_text_of(message.get("content")))
    for call in message.get("tool_calls") or ():
        words += _words(call["name"]) + _words(call["arguments"])
    return words


def _words(text: str) -> int:
    return len(text.split())


# --- tools ----------------------------------------------------------------------------------


def _offered_tools(body: dict[str, Any], api: str) -> dict[str, dict[str, Any]]:
    """Function tools of the request, name → parameters schema, in order. Responses tools are
    ``{"type": "function", "name", "parameters"}``; Chat ones nest those in ``"function"``."""
    tools = body.get("tools")
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise _invalid("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    offered: dict[str, dict[str, Any]] = {}
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue  # built-in tools (web search…) are accepted and never called
        where = f"tools[{position}]"
        if api == "chat":
            function = tool.get("function")
            if not isinstance(function, dict):
                raise _missing(f"{where}.function")
            tool, where = function, f"{where}.function"
        name = _required(tool, "name", where)
        parameters = tool.get("parameters")
        offered[name] = parameters if isinstance(parameters, dict) else {}
    return offered


def _tool_choice(body: dict[str, Any], offered: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """("none" | "auto" | "required" | "named", tool name or "")."""
    choice = body.get("tool_choice")
    if choice is None or choice == "auto":
        return "auto", ""
    if choice in ("none", "required"):
        if choice == "required" and not offered:
            raise _invalid(
                "Tool choice 'required' must be specified with 'tools' parameter.", "tool_choice"
            )
        return choice, ""
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(name, str) and name in offered:
            return "named", name
        raise _invalid(f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice")
    if isinstance(choice, dict):
        return "auto", ""  # allowed_tools, built-in tool types…: the demo lets the model decide
    raise _invalid(
        f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
        "tool_choice",
        "invalid_value",
    )


def _call_names(
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


# --- the deterministic answer ---------------------------------------------------------------


def compose_answer(user_text: str, turn: int) -> str:
    """A short markdown answer: heading, echo, list, python code, table, turn count."""
    echo = user_text.strip() or "(an empty message)"
    title = re.sub(r"[#`*_\[\]<>]", "", echo.splitlines()[0]).strip()[:60] or "your message"
    words = echo.split()
    longest = max(words, key=len).replace("`", "") if words else ""
    quote = "\n".join(f"> {line}" if line.strip() else ">" for line in echo.splitlines())
    return "\n".join(
        [
            f"## Echo: {title}",
            "",
            f"This is turn {turn} of the conversation.",
            "",
            quote,
            "",
            "Here is what the demo gateway noticed:",
            "",
            f"- Your message has {len(words)} words and {len(echo)} characters.",
            f"- Its longest word is `{longest or '-'}`.",
            "- Directives such as `#chunks=N` were removed before echoing.",
            "",
            "```python",
            "def measure(text: str) -> dict[str, int]:",
            '    return {"words": len(text.split()), "characters": len(text)}',
            "",
            f"print(measure(message))  # {{'words': {len(words)}, 'characters': {len(echo)}}}",
            "```",
            "",
            "| Measure | Value |",
            "| --- | --- |",
            f"| Turn | {turn} |",
            f"| Words | {len(words)} |",
            f"| Characters | {len(echo)} |",
        ]
    )


def compose_tool_report(conversation: list[Message], results: list[Message]) -> str:
    """The answer once tool results are in: one line quoting each result, in order."""
    names = {
        call["call_id"]: call["name"]
        for message in conversation
        for call in message.get("tool_calls") or ()
    }
    lines = []
    for result in results:
        text = " ".join(_text_of(result.get("content")).split()) or "nothing"
        end = "" if text.endswith((".", "!", "?")) else "."
        lines.append(f"The tool {names.get(result['call_id'], 'unknown')} returned: {text}{end}")
    return "\n".join(lines)


def compose_reasoning(user_text: str, turn: int) -> str:
    return (
        f"The user wrote {_words(user_text)} words in turn {turn}. I will echo the message, "
        "then add a heading, a list, a code block and a table. No tool is needed."
    )


def _tool_reasoning(names: list[str], results: int) -> str:
    if names:
        return f"I will call {', '.join(names)} and answer once the results are back."
    return f"{results} tool results are back. I will quote each of them in one line."


def _tokens(text: str) -> list[str]:
    # Each token is a word with the whitespace before it, so joining them gives the text back.
    return re.findall(r"\s*\S+", text)


def _filler(start: int) -> Iterator[str]:
    paragraph = start
    while True:
        paragraph += 1
        yield from _tokens(
            f"\n\nFiller paragraph {paragraph} keeps this demo answer going for as many "
            "chunks as were asked for, with plain words that are easy to count."
        )


def _chunks(tokens: list[str], per_chunk: int) -> list[str]:
    return ["".join(tokens[i : i + per_chunk]) for i in range(0, len(tokens), per_chunk)]


# --- one planned answer ---------------------------------------------------------------------


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: str
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    item_id: str = field(default_factory=lambda: f"fc_{uuid.uuid4().hex}")

    @property
    def pieces(self) -> list[str]:
        """The arguments in the pieces they stream in."""
        size = max(1, -(-len(self.arguments) // _ARGUMENT_PIECES))
        return [self.arguments[i : i + size] for i in range(0, len(self.arguments), size)]

    @property
    def tokens(self) -> int:
        return 1 + len(self.pieces)  # one for the name, one per streamed piece


@dataclass(slots=True)
class Choice:
    """One answer: reasoning, then either text or tool calls."""

    reasoning_chunks: list[str]
    answer_chunks: list[str]
    calls: list[ToolCall]
    incomplete: bool = False

    @property
    def answer(self) -> str:
        return "".join(self.answer_chunks)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_chunks)

    @property
    def finish_reason(self) -> str:
        if self.calls:
            return "tool_calls"
        return "length" if self.incomplete else "stop"

    def as_message(self) -> Message:
        """This answer as a conversation message, to remember it."""
        message: Message = {"role": "assistant", "content": self.answer}
        if self.calls:
            message["tool_calls"] = [
                {"call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in self.calls
            ]
        return message


@dataclass(slots=True)
class Plan:
    """Everything about one response, decided before the first byte is sent. The Responses API
    has one choice; Chat Completions has ``n``."""

    model: str
    directives: Directives
    conversation: list[Message]
    choices: list[Choice]
    usage: dict[str, Any]
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def first(self) -> Choice:
        return self.choices[0]

    @property
    def answer_chunks(self) -> list[str]:
        return self.first.answer_chunks

    @property
    def reasoning_chunks(self) -> list[str]:
        return self.first.reasoning_chunks

    @property
    def calls(self) -> list[ToolCall]:
        return self.first.calls

    @property
    def incomplete(self) -> bool:
        return self.first.incomplete

    @property
    def answer(self) -> str:
        return self.first.answer

    @property
    def reasoning(self) -> str:
        return self.first.reasoning


def _usage(schema: str, *, input_tokens: int, cached: int, output: int, reasoning: int) -> dict:
    total = input_tokens + output
    if schema == "chat":
        return {
            "prompt_tokens": input_tokens,
            "completion_tokens": output,
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
        }
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total,
    }


def make_plan(
    *,
    model: str,
    history: list[Message],
    new_messages: list[Message],
    instructions: str,
    max_tokens: Any,
    default_usage: str,
    words_per_chunk: int,
    tools: dict[str, dict[str, Any]] | None = None,
    tool_choice: tuple[str, str] = ("auto", ""),
    parallel_tool_calls: bool = True,
    n: int = 1,
) -> Plan:
    conversation = history + new_messages
    user_positions = [i for i, m in enumerate(conversation) if m.get("role") == "user"]
    last_user = user_positions[-1] if user_positions else -1
    directives, user_text = parse_directives(
        _text_of(conversation[last_user]["content"]) if user_positions else ""
    )
    turn = len(user_positions)
    results = [m for m in conversation[last_user + 1 :] if m.get("role") == "tool"]
    tools = tools or {}
    names = _call_names(
        directives, tools, tool_choice, answered=bool(results), parallel=parallel_tool_calls
    )

    if names:
        reasoning_text = _tool_reasoning(names, 0)
    elif results:
        reasoning_text = _tool_reasoning([], len(results))
    else:
        reasoning_text = compose_reasoning(user_text, turn)
    reasoning_tokens: list[str] = []
    if directives.reasoning or model in REASONING_MODELS:
        reasoning_tokens = _tokens(reasoning_text)
    text = (
        compose_tool_report(conversation, results) if results else compose_answer(user_text, turn)
    )

    choices = []
    output_tokens = 0
    for number in range(1, n + 1):
        calls = [ToolCall(name, tool_arguments(tools[name], directives)) for name in names]
        answer_tokens: list[str] = []
        if not calls:
            answer_tokens = _tokens(f"Choice {number} of {n}.\n\n{text}" if n > 1 else text)
            if directives.chunks is not None:
                wanted = directives.chunks * words_per_chunk
                filler = _filler(0)
                while len(answer_tokens) < wanted:
                    answer_tokens.append(next(filler))
                del answer_tokens[wanted:]
        # One word is one token. Like OpenAI, the limit covers reasoning and answer together.
        incomplete = False
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            room = max(0, max_tokens - len(reasoning_tokens))
            if len(answer_tokens) > room:
                del answer_tokens[room:]
                incomplete = True
        output_tokens += (
            len(answer_tokens) + len(reasoning_tokens) + sum(call.tokens for call in calls)
        )
        choices.append(
            Choice(
                reasoning_chunks=_chunks(reasoning_tokens, words_per_chunk),
                answer_chunks=_chunks(answer_tokens, words_per_chunk),
                calls=calls,
                incomplete=incomplete,
            )
        )

    input_tokens = _words(instructions) + sum(_message_words(m) for m in conversation)
    usage = _usage(
        directives.usage or default_usage,
        input_tokens=max(1, input_tokens),
        cached=sum(_message_words(m) for m in history),
        output=output_tokens,
        reasoning=len(reasoning_tokens) * n,
    )
    return Plan(
        model=model,
        directives=directives,
        conversation=conversation,
        choices=choices,
        usage=usage,
    )


# --- wire format --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    delta: bool = False  # deltas are the paced part of a stream
    hang: bool = False  # go silent until the client hangs up


_KEEPALIVE = Frame(b": keep-alive\n\n")
_HANG = Frame(b"", hang=True)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _text_faults(plan: Plan, index: int) -> Iterator[Frame]:
    """Frames that replace the normal flow once ``index`` deltas (of the answer's text or of its
    tool calls' arguments) have been sent."""
    fault = plan.directives.fault
    if _FAULT_AFTER.get(fault or "") != index:
        return
    if fault == "malformed":
        yield Frame(b"data: {not json\n\n")
    elif fault == "timeout":
        yield _HANG
    elif fault == "cut":
        raise _Cut


class _Cut(Exception):
    """Internal: end the stream here without the closing events."""


def _response_object(plan: Plan, body: dict[str, Any], *, done: bool, output: list) -> dict:
    status = "in_progress"
    if done:
        status = "incomplete" if plan.incomplete else "completed"
    tools = body.get("tools")
    return {
        "id": plan.id,
        "object": "response",
        "created_at": plan.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and plan.incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": plan.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": plan.usage if done else None,
        "metadata": body.get("metadata") or {},
    }


def _reasoning_item(plan: Plan) -> dict | None:
    if not plan.reasoning_chunks:
        return None
    return {
        "id": f"rs_{plan.id[5:]}",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": plan.reasoning}],
    }


def _message_item(plan: Plan) -> dict:
    return {
        "id": f"msg_{plan.id[5:]}",
        "type": "message",
        "status": "incomplete" if plan.incomplete else "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": plan.answer, "annotations": []}],
    }


def _call_item(call: ToolCall, *, done: bool = True) -> dict:
    return {
        "id": call.item_id,
        "type": "function_call",
        "status": "completed" if done else "in_progress",
        "arguments": call.arguments if done else "",
        "call_id": call.call_id,
        "name": call.name,
    }


def _output_items(plan: Plan) -> list[dict]:
    """A finished response's ``output``: reasoning, then the message or the function calls."""
    reasoning = _reasoning_item(plan)
    answer = [_call_item(call) for call in plan.calls] if plan.calls else [_message_item(plan)]
    return [reasoning, *answer] if reasoning else answer


def _responses_frames(plan: Plan, body: dict[str, Any]) -> Iterator[Frame]:
    """The Responses API event stream for ``plan``, event by event, as OpenAI sends it."""
    sequence = 0

    def event(type_: str, **fields: Any) -> Frame:
        nonlocal sequence
        sequence += 1
        payload = {"type": type_, "sequence_number": sequence, **fields}
        return Frame(
            b"event: " + type_.encode() + b"\ndata: " + _json(payload) + b"\n\n",
            delta=type_.endswith(".delta"),
        )

    yield event("response.created", response=_response_object(plan, body, done=False, output=[]))
    yield event(
        "response.in_progress", response=_response_object(plan, body, done=False, output=[])
    )
    yield _KEEPALIVE
    output: list[dict] = []
    reasoning_item = _reasoning_item(plan)
    if reasoning_item is not None:
        item_id, index = reasoning_item["id"], len(output)
        yield event(
            "response.output_item.added",
            output_index=index,
            item={**reasoning_item, "summary": []},
        )
        part = {"type": "summary_text", "text": ""}
        where = {"item_id": item_id, "output_index": index, "summary_index": 0}
        yield event("response.reasoning_summary_part.added", **where, part=part)
        for piece in plan.reasoning_chunks:
            yield event("response.reasoning_summary_text.delta", **where, delta=piece)
        yield event("response.reasoning_summary_text.done", **where, text=plan.reasoning)
        yield event(
            "response.reasoning_summary_part.done", **where, part={**part, "text": plan.reasoning}
        )
        yield event("response.output_item.done", output_index=index, item=reasoning_item)
        output.append(reasoning_item)

    if plan.calls:
        sent = 0
        for call in plan.calls:
            index = len(output)
            yield event(
                "response.output_item.added", output_index=index, item=_call_item(call, done=False)
            )
            where = {"item_id": call.item_id, "output_index": index}
            for piece in call.pieces:
                yield from _text_faults(plan, sent)
                sent += 1
                yield event("response.function_call_arguments.delta", **where, delta=piece)
            yield event("response.function_call_arguments.done", **where, arguments=call.arguments)
            yield event("response.output_item.done", output_index=index, item=_call_item(call))
            output.append(_call_item(call))
        yield from _text_faults(plan, sent)
    else:
        message_item = _message_item(plan)
        item_id, index = message_item["id"], len(output)
        yield event(
            "response.output_item.added",
            output_index=index,
            item={**message_item, "status": "in_progress", "content": []},
        )
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event("response.content_part.added", **where, part=part)
        for number, piece in enumerate(plan.answer_chunks):
            yield from _text_faults(plan, number)
            if number and number % _KEEPALIVE_EVERY == 0:
                yield _KEEPALIVE
            yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
        yield from _text_faults(plan, len(plan.answer_chunks))
        yield event("response.output_text.done", **where, text=plan.answer, logprobs=[])
        yield event("response.content_part.done", **where, part={**part, "text": plan.answer})
        yield event("response.output_item.done", output_index=index, item=message_item)
        output.append(message_item)
    final = _response_object(plan, body, done=True, output=output)
    yield event("response.incomplete" if plan.incomplete else "response.completed", response=final)


def _chat_chunk(plan: Plan, choices: list[dict], *, usage: Any = ...) -> dict:
    chunk = {
        "id": plan.id,
        "object": "chat.completion.chunk",
        "created": plan.created,
        "model": plan.model,
        "system_fingerprint": "fp_demo",
        "choices": choices,
    }
    if usage is not ...:
        chunk["usage"] = usage
    return chunk


def _chat_frames(plan: Plan, include_usage: bool) -> Iterator[Frame]:
    """The Chat Completions chunk stream for ``plan``, ending with ``data: [DONE]``. With several
    choices their chunks interleave, each chunk carrying one choice's ``index``."""
    streams = [
        _chat_choice_frames(plan, index, include_usage) for index in range(len(plan.choices))
    ]
    while streams:
        for stream in list(streams):
            frame = next(stream, None)
            if frame is None:
                streams.remove(stream)
            else:
                yield frame
    if include_usage:
        yield Frame(b"data: " + _json(_chat_chunk(plan, [], usage=plan.usage)) + b"\n\n")
    yield Frame(b"data: [DONE]\n\n")


def _chat_choice_frames(plan: Plan, index: int, include_usage: bool) -> Iterator[Frame]:
    """One choice's chunks. Faults (``#fault=cut``…) play out in choice 0 only."""
    # With include_usage every chunk carries "usage": null except the extra last one.
    usage_field: Any = None if include_usage else ...
    choice = plan.choices[index]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, *, paced: bool) -> Frame:
        entry = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = _json(_chat_chunk(plan, [entry], usage=usage_field))
        return Frame(b"data: " + data + b"\n\n", delta=paced)

    def faults(sent: int) -> Iterator[Frame]:
        return _text_faults(plan, sent) if index == 0 else iter(())

    content = None if choice.calls else ""
    yield chunk({"role": "assistant", "content": content, "refusal": None}, paced=False)
    if index == 0:
        yield _KEEPALIVE
    for piece in choice.reasoning_chunks:
        yield chunk({"reasoning_content": piece}, paced=True)
    sent = 0
    for piece in choice.answer_chunks:
        yield from faults(sent)
        if sent and sent % _KEEPALIVE_EVERY == 0:
            yield _KEEPALIVE
        sent += 1
        yield chunk({"content": piece}, paced=True)
    for number, call in enumerate(choice.calls):
        header = {
            "index": number,
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield chunk({"tool_calls": [header]}, paced=False)
        for piece in call.pieces:
            yield from faults(sent)
            sent += 1
            piece_delta = {"index": number, "function": {"arguments": piece}}
            yield chunk({"tool_calls": [piece_delta]}, paced=True)
    yield from faults(sent)
    yield chunk({}, choice.finish_reason, paced=False)


def _chat_completion(plan: Plan) -> dict:
    choices = []
    for index, choice in enumerate(plan.choices):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if choice.calls else choice.answer,
            "refusal": None,
        }
        if choice.reasoning_chunks:
            message["reasoning_content"] = choice.reasoning
        if choice.calls:
            message["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in choice.calls
            ]
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        )
    return {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "choices": choices,
        "usage": plan.usage,
        "system_fingerprint": "fp_demo",
    }


# --- the ASGI app ---------------------------------------------------------------------------


class _Done(Exception):
    """Internal: the exchange is over (answered already, or the client left)."""


class _HTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: list | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or []


class DemoGateway:
    """The ASGI application. Its state (response memory, recorded requests) is per instance."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        chunk_delay: float = 0.0,
        words_per_chunk: int = 1,
        record_requests: int = 50,
        memory_size: int = 10_000,
    ) -> None:
        self.api_key = api_key or None
        self.chunk_delay = max(0.0, chunk_delay)
        self.words_per_chunk = max(1, words_per_chunk)
        self.requests: deque[Any] = deque(maxlen=max(1, record_requests))
        self.record = record_requests > 0
        self.memory: OrderedDict[str, list[Message]] = OrderedDict()
        self.memory_size = memory_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        try:
            await self._handle(scope, receive, send)
        except _HTTPError as error:
            await _send_json(send, error.status, error.body, error.headers)
        except _Done:
            pass

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].rstrip("/")
        route = next((name for suffix, name in _ROUTES if path.endswith(suffix)), None)
        if route is None or (route == "requests" and not self.record):
            raise _HTTPError(
                404, _error_body(f"Unknown path {scope['path']!r}.", "invalid_request_error")
            )
        allowed = {"models": "GET", "responses": "POST", "chat": "POST", "requests": "GET DELETE"}
        if scope["method"] not in allowed[route].split():
            raise _HTTPError(
                405,
                _error_body(f"Method {scope['method']} is not allowed.", "invalid_request_error"),
                [(b"allow", allowed[route].replace(" ", ", ").encode())],
            )
        self._check_key(scope)
        if route == "models":
            data = [{"id": m, "object": "model", "owned_by": "switchboard-demo"} for m in MODELS]
            await _send_json(send, 200, {"object": "list", "data": data})
        elif route == "requests":
            if scope["method"] == "DELETE":
                self.requests.clear()
            await _send_json(send, 200, list(self.requests))
        else:
            body = await _read_json(receive)
            if self.record:
                self.requests.append(body)
            if route == "responses":
                await self._responses(body, receive, send)
            else:
                await self._chat(body, receive, send)

    def _check_key(self, scope: Scope) -> None:
        if self.api_key is None:
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if not header:
            message = "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        elif scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.api_key.encode()
        ):
            return
        else:
            message = "Incorrect API key provided."
        raise _HTTPError(401, _error_body(message, "invalid_request_error", "invalid_api_key"))

    async def _responses(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        model = _model(body)
        previous = body.get("previous_response_id")
        history: list[Message] = []
        if previous is not None:
            if not isinstance(previous, str) or previous not in self.memory:
                raise _HTTPError(
                    400,
                    _error_body(
                        f"Previous response with id '{previous}' not found.",
                        "invalid_request_error",
                        "previous_response_not_found",
                        "previous_response_id",
                    ),
                )
            self.memory.move_to_end(previous)
            history = self.memory[previous]
        new_messages = _messages_from_input(body.get("input"))
        if new_messages is None and not (previous and "input" not in body):
            raise _HTTPError(
                400,
                _error_body(
                    "Missing required parameter: 'input'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    "input",
                ),
            )
        _check_responses_tool_outputs(history + (new_messages or []))
        tools = _offered_tools(body, "responses")
        instructions = body.get("instructions")
        plan = make_plan(
            model=model,
            history=history,
            new_messages=new_messages or [],
            instructions=instructions if isinstance(instructions, str) else "",
            max_tokens=body.get("max_output_tokens"),
            default_usage="responses",
            words_per_chunk=self.words_per_chunk,
            tools=tools,
            tool_choice=_tool_choice(body, tools),
            parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        )
        plan.id = f"resp_{uuid.uuid4().hex}"
        _raise_http_fault(plan)
        remember = body.get("store", True) is not False

        def finished() -> None:
            # The function calls are remembered too, so that a follow-up carrying only
            # function_call_output items (and this id) continues the same conversation.
            if remember:
                self._remember(plan.id, [*plan.conversation, plan.first.as_message()])

        if body.get("stream"):
            await self._stream(receive, send, _responses_frames(plan, body), plan, finished)
            return
        await self._before_whole_answer(plan, receive, send)
        finished()
        output = _output_items(plan)
        await _send_json(send, 200, _response_object(plan, body, done=True, output=output))

    async def _chat(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        model = _model(body)
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise _HTTPError(
                400,
                _error_body(
                    "'messages' must be a non-empty array.",
                    "invalid_request_error",
                    "invalid_value",
                    "messages",
                ),
            )
        messages = _messages_from_chat(raw)
        tools = _offered_tools(body, "chat")
        n = body.get("n")
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_CHOICES:
            raise _invalid(
                f"Invalid value for 'n': expected an integer from 1 to {_MAX_CHOICES}.",
                "n",
                "invalid_value",
            )
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        plan = make_plan(
            model=model,
            history=[],
            new_messages=messages,
            instructions="",
            max_tokens=max_tokens,
            default_usage="chat",
            words_per_chunk=self.words_per_chunk,
            tools=tools,
            tool_choice=_tool_choice(body, tools),
            parallel_tool_calls=body.get("parallel_tool_calls") is not False,
            n=n,
        )
        plan.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        _raise_http_fault(plan)
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            frames = _chat_frames(plan, include_usage)
            await self._stream(receive, send, frames, plan, lambda: None)
            return
        await self._before_whole_answer(plan, receive, send)
        await _send_json(send, 200, _chat_completion(plan))

    async def _before_whole_answer(self, plan: Plan, receive: Receive, send: Send) -> None:
        """Stream faults, played out on a non-streamed answer."""
        fault = plan.directives.fault
        if fault == "timeout":
            if await _until_disconnect(receive, _HANG_SECONDS):
                raise _Done
            raise _HTTPError(504, _error_body("The demo gateway timed out.", "server_error"))
        if fault in ("cut", "malformed"):
            await send(_start(200, b"application/json"))
            body = b'{"id": "' + plan.id.encode() + b'", "object": '
            if fault == "malformed":
                body = b"{not json"
            await send({"type": "http.response.body", "body": body, "more_body": False})
            raise _Done

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        frames: Iterator[Frame],
        plan: Plan,
        finished: Callable[[], None],
    ) -> None:
        delay = plan.directives.delay if plan.directives.delay is not None else self.chunk_delay
        await send(
            _start(200, b"text/event-stream; charset=utf-8", [(b"cache-control", b"no-cache")])
        )
        disconnected = asyncio.Event()
        # Watching for http.disconnect in its own task lets a paced or hanging stream stop as
        # soon as the client goes away, instead of writing into a closed socket for minutes.
        watcher = asyncio.create_task(_watch_disconnect(receive, disconnected))
        try:
            sent_deltas = 0
            sent_frames = 0
            try:
                for frame in frames:
                    if frame.hang:
                        await _wait(disconnected, _HANG_SECONDS)
                        break
                    if frame.delta:
                        if sent_deltas and delay and await _wait(disconnected, delay):
                            return
                        sent_deltas += 1
                    if disconnected.is_set():
                        return
                    await send(
                        {"type": "http.response.body", "body": frame.data, "more_body": True}
                    )
                    sent_frames += 1
                    if not delay and sent_frames % 16 == 0:
                        await asyncio.sleep(0)  # let other streams and the watcher run
                else:
                    finished()
            except _Cut:
                pass
            if not disconnected.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher

    def _remember(self, response_id: str, conversation: list[Message]) -> None:
        self.memory[response_id] = conversation
        while len(self.memory) > self.memory_size:
            self.memory.popitem(last=False)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _HTTPError(
            400,
            _error_body(
                "Missing required parameter: 'model'.",
                "invalid_request_error",
                "missing_required_parameter",
                "model",
            ),
        )
    if model not in MODELS:
        raise _HTTPError(
            404,
            _error_body(
                f"The model '{model}' does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
                "model",
            ),
        )
    return model


def _raise_http_fault(plan: Plan) -> None:
    fault = plan.directives.fault
    if fault is None or not fault.isdigit():
        return
    status = int(fault)
    message, type_, code = _HTTP_FAULTS.get(
        status, (f"The demo gateway was asked to fail with {status}.", "server_error", None)
    )
    headers = [(b"retry-after", b"1")] if status == 429 else []
    raise _HTTPError(status, _error_body(message, type_, code), headers)


def _start(status: int, content_type: bytes, headers: list | None = None) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), *(headers or [])],
    }


async def _send_json(send: Send, status: int, value: Any, headers: list | None = None) -> None:
    body = _json(value)
    extra = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send(_start(status, b"application/json", extra))
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_json(receive: Receive) -> dict[str, Any]:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Done  # nobody is listening any more
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > _MAX_BODY:
            raise _HTTPError(413, _error_body("Request body too large.", "invalid_request_error"))
        if not message.get("more_body"):
            break
    try:
        body = json.loads(b"".join(parts))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _HTTPError(
            400,
            _error_body(
                "We could not parse the JSON body of your request.", "invalid_request_error"
            ),
        )
    return body


async def _watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it happened."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def _until_disconnect(receive: Receive, seconds: float) -> bool:
    """Wait up to ``seconds`` for the client to hang up; True if it did."""
    disconnected = asyncio.Event()
    watcher = asyncio.create_task(_watch_disconnect(receive, disconnected))
    try:
        return await _wait(disconnected, seconds)
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher


def make_app(
    *,
    api_key: str | None = None,
    chunk_delay: float = 0.0,
    words_per_chunk: int = 1,
    record_requests: int = 50,
) -> ASGIApp:
    """A new demo gateway. ``chunk_delay`` is in seconds; ``record_requests`` bodies are kept
    for ``GET /v1/_demo/requests`` (0 turns recording and that endpoint off)."""
    return DemoGateway(
        api_key=api_key,
        chunk_delay=chunk_delay,
        words_per_chunk=words_per_chunk,
        record_requests=record_requests,
    )


def _env_number(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


application = make_app(
    api_key=os.environ.get("DEMO_API_KEY") or None,
    chunk_delay=_env_number("DEMO_CHUNK_DELAY_MS", 20) / 1000,
    words_per_chunk=_env_number("DEMO_WORDS_PER_CHUNK", 1),
    record_requests=_env_number("DEMO_RECORD_REQUESTS", 50),
)


def main(argv: list[str] | None = None) -> None:
    """``python -m chat.upstream.demo --port 9100``: serve the demo gateway with Daphne."""
    parser = argparse.ArgumentParser(description="Serve the Switchboard demo gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", help="require this Bearer key (default: $DEMO_API_KEY)")
    parser.add_argument("--delay-ms", type=int, help="pause between chunks (default 20)")
    parser.add_argument("--words-per-chunk", type=int)
    args = parser.parse_args(argv)
    # Daphne imports a fresh copy of this module, which reads its settings from the environment.
    for name, value in (
        ("DEMO_API_KEY", args.api_key),
        ("DEMO_CHUNK_DELAY_MS", args.delay_ms),
        ("DEMO_WORDS_PER_CHUNK", args.words_per_chunk),
    ):
        if value is not None:
            os.environ[name] = str(value)
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(
        ["-b", args.host, "-p", str(args.port), "chat.upstream.demo:application"]
    )


if __name__ == "__main__":
    main()
