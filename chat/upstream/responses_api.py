"""``POST /v1/responses``: build the request; translate its stream or body into events."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import request as neutral
from .events import (
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
from .sse import SSEMessage

__all__ = [
    "MALFORMED_MESSAGE",
    "ResponsesStreamTranslator",
    "build_request",
    "encode",
    "parse_response",
]

MALFORMED_MESSAGE = "The gateway sent a malformed event, so the answer could not be read."

# The Responses API says "max_output_tokens", Chat Completions says "length"; callers see one word.
_INCOMPLETE_REASONS = {"max_output_tokens": "max_tokens"}


def build_request(
    model: str,
    input: str | list[dict[str, Any]] | None,
    *,
    previous_response_id: str | None = None,
    instructions: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A streaming request body. ``params`` (temperature, reasoning, tools…) pass through as-is,
    but cannot switch off streaming or override the explicit arguments."""
    body: dict[str, Any] = dict(params or {})
    body["model"] = model
    if input is not None:
        body["input"] = input
    if previous_response_id:
        body["previous_response_id"] = previous_response_id
    if instructions:
        body["instructions"] = instructions
    body["stream"] = True
    return body


# -- encoding a neutral Request ------------------------------------------------------------------


def _file_part(file: neutral.MessageFile) -> dict[str, Any]:
    """An image as ``input_image``, any other file as ``input_file`` (both inline, base64)."""
    if file.is_image:
        return {"type": "input_image", "image_url": file.data_url}
    return {"type": "input_file", "filename": file.name, "file_data": file.data_url}


def _message(message: neutral.Message) -> dict[str, Any]:
    if not message.files:
        return {"role": message.role, "content": message.text}
    parts = [{"type": "input_text", "text": message.text}] if message.text else []
    return {"role": message.role, "content": parts + [_file_part(f) for f in message.files]}


def tool_body(tool: neutral.ToolSpec) -> dict[str, Any]:
    """A function tool as ``/v1/responses`` wants it (flat)."""
    encoded: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description:  # an empty description says nothing; leave it out
        encoded["description"] = tool.description
    encoded["parameters"] = tool.parameters
    return encoded


def _tool_output(result: neutral.ToolResult) -> dict[str, Any]:
    """Hands a result back (the call itself is in the response ``previous_response_id`` names)."""
    output: str | list[dict[str, str]] = result.output
    if result.images:  # text and images as input parts
        output = [{"type": "input_text", "text": result.output}] + [
            {"type": "input_image", "image_url": f"data:{image.mime};base64,{image.data}"}
            for image in result.images
        ]
    return {"type": "function_call_output", "call_id": result.call_id, "output": output}


def _parameter_fields(params: neutral.Parameters) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if params.max_output_tokens is not None:
        fields["max_output_tokens"] = params.max_output_tokens
    if params.instructions:
        fields["instructions"] = params.instructions
    reasoning = {
        key: value
        for key, value in (
            ("effort", params.reasoning_effort),
            ("summary", params.reasoning_summary),
        )
        if value is not None
    }
    if reasoning:
        fields["reasoning"] = reasoning
    if params.response_format == "json_schema":
        if isinstance(params.response_schema, dict):  # never half-built
            schema = params.response_schema
            fields["text"] = {
                "format": {"type": "json_schema", "name": "response", "schema": schema}
            }
    elif params.response_format in ("text", "json_object"):
        fields["text"] = {"format": {"type": params.response_format}}
    return fields


def encode(request: neutral.Request) -> dict[str, Any]:
    """The body of a ``/v1/responses`` request: with tool results, only the last step's
    outputs after the response that asked for them; continuing a stored response, only the
    new message; otherwise the whole conversation."""
    previous = request.continue_from
    if request.tool_steps:
        input: str | list[dict[str, Any]] = [_tool_output(r) for r in request.tool_steps[-1]]
    elif previous:
        new = request.history[-1]
        # Only the new message: its files go with it, earlier ones are in the stored response.
        input = [_message(new)] if new.files else new.text
    else:
        input = [_message(m) for m in request.history]
    fields = neutral.common_fields(request) | _parameter_fields(request.parameters)
    choice = neutral.tool_choice_for(request)
    if choice is not None:
        forced = request.parameters.forced_function()
        fields["tool_choice"] = {"type": "function", "name": forced} if forced else choice
    if request.tools:
        fields["tools"] = [tool_body(tool) for tool in request.tools]
    return build_request(request.model, input, previous_response_id=previous, params=fields)


def _reason(details: Any) -> str | None:
    reason = details.get("reason") if isinstance(details, dict) else None
    if not isinstance(reason, str):
        return None
    return _INCOMPLETE_REASONS.get(reason, reason)


def _error_fields(error: Any, fallback: str) -> tuple[str, str | None]:
    """(message, code) from an error object, which some gateways send as a bare string."""
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code")
        return (
            message if isinstance(message, str) and message else fallback,
            str(code) if code else None,
        )
    if isinstance(error, str) and error:
        return error, None
    return fallback, None


def _output_texts(response: dict[str, Any]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(answer texts, reasoning texts, function_call items) found in a response's ``output``."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    output = response.get("output")
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call":
            calls.append(item)
        elif kind == "reasoning":
            for part in (item.get("summary") or []) + (item.get("content") or []):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    reasoning.append(part["text"])
        elif kind in ("message", None):
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content if isinstance(content, list) else []:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                    texts.append(part["refusal"])
                elif part.get("type") in ("output_text", "text", None) and isinstance(
                    part.get("text"), str
                ):
                    texts.append(part["text"])
    return texts, reasoning, calls


def _ending(response: dict[str, Any], default_status: str) -> list[Event]:
    """Usage (when reported) followed by the terminal event for a finished response object."""
    events: list[Event] = []
    if isinstance(response.get("usage"), dict):
        events.append(Usage.from_payload(response["usage"]))
    status = response.get("status")
    status = status if isinstance(status, str) else default_status
    response_id = response.get("id") if isinstance(response.get("id"), str) else None
    if status == "failed":
        message, code = _error_fields(response.get("error"), "The model failed to answer.")
        events.append(Failed(message, "upstream", code=code))
    elif status == "incomplete":
        reason = _reason(response.get("incomplete_details"))
        events.append(Completed(response_id, "incomplete", reason))
    else:
        events.append(Completed(response_id, "completed" if status != "cancelled" else status))
    return events


def parse_response(body: dict[str, Any]) -> list[Event]:
    """Events for a non-streamed response body, in the order a stream would have produced them."""
    if not isinstance(body, dict):
        return [Failed(MALFORMED_MESSAGE, "protocol")]
    if body.get("error") and not body.get("output"):
        message, code = _error_fields(body["error"], "The model failed to answer.")
        return [Failed(message, "upstream", code=code)]
    events: list[Event] = [Started(text_or_none(body.get("id")), text_or_none(body.get("model")))]
    texts, reasoning, calls = _output_texts(body)
    if reasoning:
        events.append(ReasoningDelta("\n\n".join(reasoning)))
    if texts:
        events.append(TextDelta("".join(texts)))
    for index, item in enumerate(calls):
        events.append(
            ToolCallDone(
                index,
                str(item.get("call_id") or item.get("id") or ""),
                str(item.get("name") or ""),
                str(item.get("arguments") or ""),
            )
        )
    return events + _ending(body, "completed")


@dataclass(slots=True)
class _ToolCall:
    index: int
    call_id: str | None
    name: str | None
    arguments: list[str] = field(default_factory=list)
    done: bool = False


class ResponsesStreamTranslator:
    """Turns one Responses stream's SSE messages into normalized events; one instance per stream."""

    def __init__(self) -> None:
        self._started = False
        self._response_id: str | None = None
        self._tool_calls: list[_ToolCall] = []
        self._call_keys: dict[tuple[str, Any], _ToolCall] = {}
        self._text_seen = False
        self._text_parts_with_deltas: set[tuple[Any, Any]] = set()
        self._reasoning_part: tuple[Any, Any] | None = None

    def feed(self, message: SSEMessage) -> list[Event]:
        data = message.data.strip()
        if not data or data == "[DONE]":
            return []
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            return [Failed(MALFORMED_MESSAGE, "protocol")]
        if not isinstance(payload, dict):
            return [Failed(MALFORMED_MESSAGE, "protocol")]
        kind = payload.get("type") or message.event
        handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return []
        if payload.get("type") != kind:
            payload = {**payload, "type": kind}  # the type came from the SSE "event:" line
        return handler(self, payload)

    def close(self) -> list[Event]:
        """End of stream. Nothing to flush: a Responses stream always ends with its own event."""
        return []

    # --- handlers, one per event type we care about -------------------------------------------

    def _created(self, payload: dict[str, Any]) -> list[Event]:
        response = payload.get("response")
        response = response if isinstance(response, dict) else {}
        if isinstance(response.get("id"), str):
            self._response_id = response["id"]
        if self._started:
            return []
        self._started = True
        return [Started(self._response_id, text_or_none(response.get("model")))]

    @staticmethod
    def _part_key(payload: dict[str, Any], index: Any) -> tuple[str | None, int | None]:
        """Which text part an event belongs to; odd values (a list for an id) count as absent."""
        item_id = payload.get("item_id")
        return (
            item_id if isinstance(item_id, str) else None,
            index if isinstance(index, int) else None,
        )

    def _text_delta(self, payload: dict[str, Any]) -> list[Event]:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        self._text_seen = True
        self._text_parts_with_deltas.add(self._part_key(payload, payload.get("content_index")))
        return [TextDelta(delta)]

    def _text_done(self, payload: dict[str, Any]) -> list[Event]:
        # Some proxies send only the ".done" event with the whole text; relay it in that case.
        key = self._part_key(payload, payload.get("content_index"))
        text = payload.get("text")
        if key in self._text_parts_with_deltas or not isinstance(text, str) or not text:
            return []
        self._text_seen = True
        return [TextDelta(text)]

    def _reasoning_delta(self, payload: dict[str, Any]) -> list[Event]:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        # Summaries come in several parts; keep them apart as paragraphs instead of run together.
        part = self._part_key(payload, payload.get("summary_index", payload.get("content_index")))
        separator = "\n\n" if self._reasoning_part not in (None, part) else ""
        self._reasoning_part = part
        return [ReasoningDelta(separator + delta)]

    # A call is found by its item's ``output_index`` (or ``item_id``), but its event ``index`` is
    # its position among the response's function calls (0, 1, …), as in Chat Completions and in
    # :func:`parse_response`: a reasoning item or a message before it does not shift it.

    def _call_for(self, payload: dict[str, Any], item: dict[str, Any] | None = None) -> _ToolCall:
        output_index = payload.get("output_index")
        output_index = output_index if isinstance(output_index, int) else None
        item_id = payload.get("item_id") or (item or {}).get("id")
        item_id = item_id if isinstance(item_id, str) else None
        for key in (("output", output_index), ("item", item_id)):
            if key[1] is not None and key in self._call_keys:
                return self._call_keys[key]
        if output_index is None and item_id is None and self._tool_calls:
            return self._tool_calls[-1]  # a sparse proxy: the call being streamed
        call = _ToolCall(len(self._tool_calls), None, None)
        self._tool_calls.append(call)
        if output_index is not None:
            self._call_keys["output", output_index] = call
        if item_id is not None:
            self._call_keys["item", item_id] = call
        return call

    def _function_call_item(self, payload: dict[str, Any]) -> tuple[_ToolCall, dict] | None:
        """The call of a ``function_call`` output item (its id and name filled in) and the item;
        ``None`` for any other kind of item."""
        item = payload.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return None
        call = self._call_for(payload, item)
        call.call_id = call.call_id or item.get("call_id")
        call.name = call.name or item.get("name")
        return call, item

    def _item_added(self, payload: dict[str, Any]) -> list[Event]:
        found = self._function_call_item(payload)
        if found is None:
            return []
        call, item = found
        arguments = item.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.arguments.append(arguments)
        # Announce the call right away (even with no arguments yet) so a UI can show its card.
        return [ToolCallDelta(call.index, call.call_id, call.name, arguments or "")]

    def _arguments_delta(self, payload: dict[str, Any]) -> list[Event]:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        call = self._call_for(payload)
        call.arguments.append(delta)
        return [ToolCallDelta(call.index, call.call_id, call.name, delta)]

    def _arguments_done(self, payload: dict[str, Any]) -> list[Event]:
        call = self._call_for(payload)
        if isinstance(payload.get("name"), str):
            call.name = call.name or payload["name"]
        return self._finish_call(call, payload.get("arguments"))

    def _item_done(self, payload: dict[str, Any]) -> list[Event]:
        found = self._function_call_item(payload)
        if found is None:
            return []
        call, item = found
        return self._finish_call(call, item.get("arguments"))

    def _finish_call(self, call: _ToolCall, arguments: Any) -> list[Event]:
        if call.done:
            return []
        call.done = True
        if not isinstance(arguments, str):
            arguments = "".join(call.arguments)
        return [ToolCallDone(call.index, call.call_id or "", call.name or "", arguments)]

    def _finished(self, payload: dict[str, Any]) -> list[Event]:
        response = payload.get("response")
        response = response if isinstance(response, dict) else {}
        if "id" not in response and self._response_id:
            response = {**response, "id": self._response_id}
        events: list[Event] = []
        texts, _, calls = _output_texts(response)
        if not self._text_seen and texts:
            # A gateway that buffers everything may send the answer only inside the final event.
            events.append(TextDelta("".join(texts)))
        if not self._tool_calls:
            # …and its function calls too.
            for item in calls:
                call_id = str(item.get("call_id") or item.get("id") or "")
                call = _ToolCall(len(self._tool_calls), call_id, str(item.get("name") or ""))
                self._tool_calls.append(call)
                events.extend(self._finish_call(call, item.get("arguments")))
        for call in self._tool_calls:
            events.extend(self._finish_call(call, None))
        return events + _ending(response, payload["type"].removeprefix("response."))

    def _error(self, payload: dict[str, Any]) -> list[Event]:
        error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
        message, code = _error_fields(error, "The gateway reported an error during the answer.")
        return [Failed(message, "upstream", code=code)]

    _HANDLERS: dict[str, Callable[[ResponsesStreamTranslator, dict[str, Any]], list[Event]]] = {
        "response.created": _created,
        "response.in_progress": _created,
        "response.output_text.delta": _text_delta,
        "response.output_text.done": _text_done,
        "response.refusal.delta": _text_delta,
        "response.reasoning_summary_text.delta": _reasoning_delta,
        "response.reasoning_text.delta": _reasoning_delta,
        "response.output_item.added": _item_added,
        "response.function_call_arguments.delta": _arguments_delta,
        "response.function_call_arguments.done": _arguments_done,
        "response.output_item.done": _item_done,
        "response.completed": _finished,
        "response.incomplete": _finished,
        "response.failed": _finished,
        "error": _error,
    }
