"""The wire format: a plan as Responses events, Chat Completions chunks, or whole answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from demo_gateway.plans import Choice, Plan, ToolCall

_FAULT_AFTER = {"cut": 3, "malformed": 3, "timeout": 2}  # deltas sent before the fault
_KEEPALIVE_EVERY = 20  # deltas between SSE comment lines (they exercise clients' parsers)
_AUDIO_PIECES = 4  # a spoken answer's bytes stream in this many base64 pieces
_AUDIO_LIFETIME = 3600  # seconds; "expires_at" of an audio answer, as OpenAI reports it


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    delta: bool = False  # deltas are the paced part of a stream
    hang: bool = False  # go silent until the client hangs up


_KEEPALIVE = Frame(b": keep-alive\n\n")
_HANG = Frame(b"", hang=True)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


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
        raise Cut


class Cut(Exception):
    """Internal: end the stream here without the closing events."""


def response_object(plan: Plan, body: dict[str, Any], *, done: bool, output: list) -> dict:
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


def output_items(plan: Plan) -> list[dict]:
    """A finished response's ``output``: reasoning, then the message or the function calls."""
    reasoning = _reasoning_item(plan)
    answer = [_call_item(call) for call in plan.calls] if plan.calls else [_message_item(plan)]
    return [reasoning, *answer] if reasoning else answer


def responses_frames(plan: Plan, body: dict[str, Any]) -> Iterator[Frame]:
    """The Responses API event stream for ``plan``, event by event, as OpenAI sends it."""
    event = _EventWriter()
    yield event("response.created", response=response_object(plan, body, done=False, output=[]))
    yield event("response.in_progress", response=response_object(plan, body, done=False, output=[]))
    yield _KEEPALIVE
    output: list[dict] = []
    reasoning_item = _reasoning_item(plan)
    if reasoning_item is not None:
        yield from _reasoning_events(plan, event, reasoning_item, index=len(output))
        output.append(reasoning_item)
    if plan.calls:
        yield from _call_events(plan, event, output)
    else:
        message_item = _message_item(plan)
        yield from _message_events(plan, event, message_item, index=len(output))
        output.append(message_item)
    final = response_object(plan, body, done=True, output=output)
    yield event("response.incomplete" if plan.incomplete else "response.completed", response=final)


class _EventWriter:
    """Frames Responses events, numbering them (``sequence_number``) in the order they are sent."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, type_: str, **fields: Any) -> Frame:
        self.sequence += 1
        payload = {"type": type_, "sequence_number": self.sequence, **fields}
        return Frame(
            b"event: " + type_.encode() + b"\ndata: " + json_bytes(payload) + b"\n\n",
            delta=type_.endswith(".delta"),
        )


def _reasoning_events(
    plan: Plan, event: _EventWriter, reasoning_item: dict, *, index: int
) -> Iterator[Frame]:
    yield event(
        "response.output_item.added", output_index=index, item={**reasoning_item, "summary": []}
    )
    part = {"type": "summary_text", "text": ""}
    where = {"item_id": reasoning_item["id"], "output_index": index, "summary_index": 0}
    yield event("response.reasoning_summary_part.added", **where, part=part)
    for piece in plan.reasoning_chunks:
        yield event("response.reasoning_summary_text.delta", **where, delta=piece)
    yield event("response.reasoning_summary_text.done", **where, text=plan.reasoning)
    yield event(
        "response.reasoning_summary_part.done", **where, part={**part, "text": plan.reasoning}
    )
    yield event("response.output_item.done", output_index=index, item=reasoning_item)


def _call_events(plan: Plan, event: _EventWriter, output: list[dict]) -> Iterator[Frame]:
    """Every tool call of the plan, appended to ``output`` as it is done."""
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


def _message_events(
    plan: Plan, event: _EventWriter, message_item: dict, *, index: int
) -> Iterator[Frame]:
    yield event(
        "response.output_item.added",
        output_index=index,
        item={**message_item, "status": "in_progress", "content": []},
    )
    where = {"item_id": message_item["id"], "output_index": index, "content_index": 0}
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


def chat_frames(plan: Plan, include_usage: bool) -> Iterator[Frame]:
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
        yield Frame(b"data: " + json_bytes(_chat_chunk(plan, [], usage=plan.usage)) + b"\n\n")
    yield Frame(b"data: [DONE]\n\n")


def _chat_choice_frames(plan: Plan, index: int, include_usage: bool) -> Iterator[Frame]:
    """One choice's chunks. Faults (``#fault=cut``…) play out in choice 0 only."""
    # With include_usage every chunk carries "usage": null except the extra last one.
    usage_field: Any = None if include_usage else ...
    choice = plan.choices[index]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, *, paced: bool) -> Frame:
        entry = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = json_bytes(_chat_chunk(plan, [entry], usage=usage_field))
        return Frame(b"data: " + data + b"\n\n", delta=paced)

    def faults(sent: int) -> Iterator[Frame]:
        return _text_faults(plan, sent) if index == 0 else iter(())

    content = None if choice.calls or choice.audio is not None else ""
    yield chunk({"role": "assistant", "content": content, "refusal": None}, paced=False)
    if index == 0:
        yield _KEEPALIVE
    for piece in choice.reasoning_chunks:
        yield chunk({"reasoning_content": piece}, paced=True)
    sent = 0
    audio_id = f"audio_{plan.id[9:]}_{index}"
    for piece in choice.answer_chunks:
        yield from faults(sent)
        if sent and sent % _KEEPALIVE_EVERY == 0:
            yield _KEEPALIVE
        sent += 1
        if choice.audio is None:
            yield chunk({"content": piece}, paced=True)
        else:  # a spoken answer's text is its transcript
            yield chunk({"audio": {"id": audio_id, "transcript": piece}}, paced=True)
    for piece in _audio_pieces(choice):
        audio = {"id": audio_id, "data": piece, "expires_at": plan.created + _AUDIO_LIFETIME}
        yield chunk({"audio": audio}, paced=True)
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


def _audio_pieces(choice: Choice) -> list[str]:
    """The spoken answer in base64 pieces, each decodable on its own (whole samples)."""
    if choice.audio is None:
        return []
    size = -(-len(choice.audio) // _AUDIO_PIECES)
    size += size % 2
    return [
        base64.b64encode(choice.audio[i : i + size]).decode()
        for i in range(0, len(choice.audio), size)
    ]


def chat_completion(plan: Plan) -> dict:
    choices = []
    for index, choice in enumerate(plan.choices):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if choice.calls or choice.audio is not None else choice.answer,
            "refusal": None,
        }
        if choice.audio is not None:
            message["audio"] = {
                "id": f"audio_{plan.id[9:]}_{index}",
                "expires_at": plan.created + _AUDIO_LIFETIME,
                "data": base64.b64encode(choice.audio).decode(),
                "transcript": choice.answer,
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
