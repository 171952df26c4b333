"""``POST /v1/chat/completions``: build the request; translate its stream or body into events.

Choice 0 is relayed whole (text, reasoning, tool calls, audio); with ``n > 1`` the other choices'
text comes as ``ChoiceDelta`` and their audio as ``AudioDelta`` (their reasoning and tool calls are
skipped), streamed or not, while the usage reported, which covers every choice, is passed on
whole. Tool calls are numbered by their ``index`` within choice 0. A spoken answer
(``modalities`` with audio) comes as ``message.audio`` / ``delta.audio``: its transcript is the
choice's text, its base64 ``data`` pieces are ``AudioDelta`` events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import request as neutral
from .events import (
    AudioDelta,
    ChoiceDelta,
    Completed,
    Event,
    Failed,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    Usage,
    text_or_none,
)
from .responses_api import MALFORMED_MESSAGE
from .sse import SSEMessage

__all__ = ["ChatStreamTranslator", "build_request", "encode", "parse_response"]

# finish_reason values that mean the answer stopped early, mapped to Completed.reason.
_INCOMPLETE = {"length": "max_tokens", "content_filter": "content_filter"}


def build_request(
    model: str, messages: list[dict[str, Any]], *, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A streaming request body that asks for usage in the last chunk. ``params`` pass through."""
    body: dict[str, Any] = dict(params or {})
    body["model"] = model
    body["messages"] = messages
    body["stream"] = True
    stream_options = body.get("stream_options")
    body["stream_options"] = {
        **(stream_options if isinstance(stream_options, dict) else {}),
        "include_usage": True,
    }
    return body


# -- encoding a neutral Request ------------------------------------------------------------------


def _file_part(file: neutral.MessageFile, file_parts: bool) -> dict[str, Any]:
    """An image as an ``image_url`` part; a document as the provider's ``file`` part when its
    model takes one, else as a text part carrying the document's name and text."""
    if file.is_image:
        return {"type": "image_url", "image_url": {"url": file.data_url}}
    if file_parts or file.text is None:
        return {"type": "file", "file": {"filename": file.name, "file_data": file.data_url}}
    return {"type": "text", "text": f"File {file.name}:\n\n{file.text}"}


def _message(message: neutral.Message, file_parts: bool = False) -> dict[str, Any]:
    if not message.files:
        return {"role": message.role, "content": message.text}
    parts = [{"type": "text", "text": message.text}] if message.text else []
    parts += [_file_part(file, file_parts) for file in message.files]
    return {"role": message.role, "content": parts}


def tool_body(tool: neutral.ToolSpec) -> dict[str, Any]:
    """A function tool as ``/v1/chat/completions`` wants it (nested under "function")."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


def _tool_step(step: list[neutral.ToolResult]) -> list[dict[str, Any]]:
    """One step of the tool loop as messages: the assistant's calls, then each result."""
    calls = [
        {
            "id": result.call_id,
            "type": "function",
            "function": {"name": result.name, "arguments": result.arguments},
        }
        for result in step
    ]
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": calls}]
    messages.extend(
        {"role": "tool", "tool_call_id": result.call_id, "content": result.output}
        for result in step
    )
    return messages


def _parameter_fields(params: neutral.Parameters) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if params.max_output_tokens is not None:
        legacy = params.max_tokens_field == "max_tokens"
        fields["max_tokens" if legacy else "max_completion_tokens"] = params.max_output_tokens
    if params.reasoning_effort is not None:
        fields["reasoning_effort"] = params.reasoning_effort
    if params.response_format == "json_schema":
        if isinstance(params.response_schema, dict):  # never half-built
            schema = {"name": "response", "schema": params.response_schema}
            fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif params.response_format in ("text", "json_object"):
        fields["response_format"] = {"type": params.response_format}
    if params.modalities == neutral.TEXT_AND_AUDIO:
        fields["modalities"] = ["text", "audio"]
        fields["audio"] = {
            "voice": params.audio_voice or neutral.VOICES[0],
            "format": params.audio_format or "wav",
        }
    return fields


def encode(request: neutral.Request) -> dict[str, Any]:
    """The body of a ``/v1/chat/completions`` request: the whole conversation every time (the
    instructions as the system message), then every tool step so far."""
    messages: list[dict[str, Any]] = []
    if request.parameters.instructions:
        messages.append({"role": "system", "content": request.parameters.instructions})
    messages += [_message(m, request.file_parts) for m in request.history]
    for step in request.tool_steps:
        messages += _tool_step(step)
    fields = neutral.common_fields(request) | _parameter_fields(request.parameters)
    choice = neutral.tool_choice_for(request)
    if choice is not None:
        forced = request.parameters.forced_function()
        fields["tool_choice"] = (
            {"type": "function", "function": {"name": forced}} if forced else choice
        )
    if request.tools:
        fields["tools"] = [tool_body(tool) for tool in request.tools]
    return build_request(request.model, messages, params=fields)


def _ending(finish_reason: str | None, response_id: str | None) -> Completed:
    if finish_reason in _INCOMPLETE:
        return Completed(response_id, "incomplete", _INCOMPLETE[finish_reason])
    return Completed(response_id, "completed")


def _error(error: Any) -> Failed:
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "The gateway reported an error during the answer."
    return Failed(message, "upstream", code=str(code) if code else None)


def _first_choice(choices: Any) -> dict[str, Any] | None:
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _other_choices(choices: Any) -> list[tuple[int, dict[str, Any]]]:
    """(index, choice) of every choice after the first, in the order given."""
    return [
        (choice["index"], choice)
        for choice in (choices if isinstance(choices, list) else [])
        if isinstance(choice, dict)
        and isinstance(choice.get("index"), int)
        and not isinstance(choice["index"], bool)
        and choice["index"] > 0
    ]


def _audio_events(part: dict[str, Any], choice: int) -> list[Event]:
    """A spoken answer's transcript (as the choice's text) and base64 audio, whole or a piece."""
    audio = part.get("audio")
    if not isinstance(audio, dict):
        return []
    events: list[Event] = []
    transcript = audio.get("transcript")
    if isinstance(transcript, str) and transcript:
        events.append(TextDelta(transcript) if choice == 0 else ChoiceDelta(choice, transcript))
    if isinstance(audio.get("data"), str) and audio["data"]:
        events.append(AudioDelta(audio["data"], choice))
    return events


def _other_choice_events(index: int, part: dict[str, Any]) -> list[Event]:
    """What is relayed of choice ``index`` > 0: its text, and its audio."""
    events: list[Event] = []
    if isinstance(part.get("content"), str) and part["content"]:
        events.append(ChoiceDelta(index, part["content"]))
    return events + _audio_events(part, index)


def _content_events(part: dict[str, Any]) -> list[Event]:
    """Reasoning, then text, of a whole ``message`` or a streamed ``delta`` (same fields)."""
    events: list[Event] = []
    reasoning = _reasoning(part)
    if isinstance(reasoning, str) and reasoning:
        events.append(ReasoningDelta(reasoning))
    if isinstance(part.get("content"), str) and part["content"]:
        events.append(TextDelta(part["content"]))
    return events


def _reasoning(container: dict[str, Any]) -> Any:
    # DeepSeek and most gateways say "reasoning_content"; some proxies (OpenRouter) say "reasoning".
    value = container.get("reasoning_content")
    return value if value is not None else container.get("reasoning")


def parse_response(body: dict[str, Any]) -> list[Event]:
    """Events for a non-streamed ``chat.completion`` body."""
    if not isinstance(body, dict):
        return [Failed(MALFORMED_MESSAGE, "protocol")]
    if body.get("error") and not body.get("choices"):
        return [_error(body["error"])]
    response_id = body.get("id") if isinstance(body.get("id"), str) else None
    events: list[Event] = [Started(response_id, text_or_none(body.get("model")))]
    choice = _first_choice(body.get("choices")) or {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    events.extend(_content_events(message))
    events.extend(_audio_events(message, 0))
    for index, other in _other_choices(body.get("choices")):
        if isinstance(other.get("message"), dict):
            events.extend(_other_choice_events(index, other["message"]))
    tool_calls = message.get("tool_calls")
    for position, call in enumerate(tool_calls if isinstance(tool_calls, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        events.append(
            ToolCallDone(
                call.get("index", position) if isinstance(call.get("index"), int) else position,
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    if isinstance(body.get("usage"), dict):
        events.append(Usage.from_payload(body["usage"]))
    finish_reason = choice.get("finish_reason")
    events.append(_ending(finish_reason if isinstance(finish_reason, str) else None, response_id))
    return events


@dataclass(slots=True)
class _ToolCall:
    call_id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    done: bool = False


class ChatStreamTranslator:
    """Turns one ``chat.completion.chunk`` stream into normalized events; one instance per stream.

    With ``include_usage`` the usage chunk comes *after* the chunk carrying ``finish_reason``, so
    Usage and Completed are held back until ``[DONE]`` (or :meth:`close`, for gateways that end
    the stream without ``[DONE]``).
    """

    def __init__(self) -> None:
        self._started = False
        self._response_id: str | None = None
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._tool_calls: dict[int, _ToolCall] = {}
        self._ended = False

    def feed(self, message: SSEMessage) -> list[Event]:
        data = message.data.strip()
        if not data or self._ended:
            return []
        if data == "[DONE]":
            return self._end()
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            return [Failed(MALFORMED_MESSAGE, "protocol")]
        if not isinstance(chunk, dict):
            return [Failed(MALFORMED_MESSAGE, "protocol")]
        if chunk.get("error"):
            # Some gateways report a failure mid-stream as a chunk with an "error" object.
            self._ended = True
            return [_error(chunk["error"])]

        events: list[Event] = []
        if not self._started:
            self._started = True
            self._response_id = chunk.get("id") if isinstance(chunk.get("id"), str) else None
            events.append(Started(self._response_id, text_or_none(chunk.get("model"))))
        if isinstance(chunk.get("usage"), dict):
            # Some gateways repeat running usage on every chunk; the last one reported wins.
            self._usage = Usage.from_payload(chunk["usage"])
        for index, other in _other_choices(chunk.get("choices")):
            if isinstance(other.get("delta"), dict):
                events.extend(_other_choice_events(index, other["delta"]))
        choice = _first_choice(chunk.get("choices"))
        if choice is None:
            return events
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        events.extend(_content_events(delta))
        events.extend(_audio_events(delta, 0))
        tool_calls = delta.get("tool_calls")
        for position, piece in enumerate(tool_calls if isinstance(tool_calls, list) else []):
            if isinstance(piece, dict):
                events.extend(self._tool_call_piece(position, piece))
        finish_reason = choice.get("finish_reason")
        if isinstance(finish_reason, str) and finish_reason:
            self._finish_reason = finish_reason
            events.extend(self._finish_calls())
        return events

    def close(self) -> list[Event]:
        """End of stream without ``[DONE]``: finished only if a ``finish_reason`` was seen."""
        if self._ended or self._finish_reason is None:
            return []
        return self._end()

    def _tool_call_piece(self, position: int, piece: dict[str, Any]) -> list[Event]:
        # Providers that send each call whole, in one chunk, sometimes leave out "index".
        index = piece.get("index") if isinstance(piece.get("index"), int) else position
        call = self._tool_calls.setdefault(index, _ToolCall())
        if isinstance(piece.get("id"), str) and piece["id"]:
            call.call_id = piece["id"]
        function = piece.get("function") if isinstance(piece.get("function"), dict) else {}
        if isinstance(function.get("name"), str) and function["name"]:
            call.name = call.name or function["name"]  # arrives whole, in the call's first piece
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""
        if arguments:
            call.arguments.append(arguments)
        return [ToolCallDelta(index, call.call_id, call.name, arguments)]

    def _finish_calls(self) -> list[Event]:
        events: list[Event] = []
        for index, call in sorted(self._tool_calls.items()):
            if not call.done:
                call.done = True
                arguments = "".join(call.arguments)
                events.append(ToolCallDone(index, call.call_id or "", call.name or "", arguments))
        return events

    def _end(self) -> list[Event]:
        self._ended = True
        events = self._finish_calls()
        if self._usage is not None:
            events.append(self._usage)
        events.append(_ending(self._finish_reason, self._response_id))
        return events
