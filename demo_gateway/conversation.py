"""Both APIs' requests read into one conversation shape, validated like OpenAI does."""

from __future__ import annotations

from typing import Any

from demo_gateway.errors import (
    HTTPError,
    error_body,
    invalid_request,
    missing_parameter,
    required_string,
)
from demo_gateway.media import Attachment, file_part, image_part

Message = dict[str, Any]


def text_of(content: Any) -> str:
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


def files_of(content: Any, param: str) -> list[Attachment]:
    """The images and files among a message's content parts, decoded and described. Both APIs'
    part shapes are read: Responses ``input_image`` / ``input_file``, Chat ``image_url`` / ``file``.
    """
    found: list[Attachment] = []
    for number, part in enumerate(content if isinstance(content, list) else []):
        if not isinstance(part, dict):
            continue
        where = f"{param}[{number}]"
        kind = part.get("type")
        if kind == "input_image":
            found.append(image_part(part.get("image_url"), f"{where}.image_url"))
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            found.append(image_part(url, f"{where}.image_url.url"))
        elif kind == "input_file":
            found.append(file_part(part, where))
        elif kind == "file":
            inner = part.get("file")
            found.append(file_part(inner if isinstance(inner, dict) else {}, f"{where}.file"))
    return found


# Conversation messages are plain dicts: {"role", "content"}, plus "files" (the images and files
# the message carried, described, see ``demo_gateway.media``), plus "tool_calls" (a list of
# {"call_id", "name", "arguments"}) on an assistant message that called tools, and "call_id" on a
# {"role": "tool"} message carrying one result. Both APIs are read into this one shape.


def messages_from_input(value: Any) -> list[Message] | None:
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
            content = item.get("content")
            messages.append(
                {
                    "role": str(item["role"]),
                    "content": text_of(content),
                    "files": files_of(content, f"input[{position}].content"),
                }
            )
        elif kind == "function_call":
            call = {
                "call_id": required_string(item, "call_id", f"input[{position}]"),
                "name": required_string(item, "name", f"input[{position}]"),
                "arguments": str(item.get("arguments") or ""),
            }
            previous = messages[-1] if messages else None
            if previous and previous["role"] == "assistant" and previous.get("tool_calls"):
                previous["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = required_string(item, "call_id", f"input[{position}]")
            output = item.get("output")
            messages.append({"role": "tool", "call_id": call_id, "content": text_of(output)})
        # Item references and other item types are not modelled; they do not count as turns.
    return messages


def messages_from_chat(raw: list[Any]) -> list[Message]:
    """Conversation messages from Chat Completions ``messages``, validated like OpenAI does."""
    messages: list[Message] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise HTTPError(
                400,
                error_body(
                    f"Invalid type for 'messages[{position}]': expected an object.",
                    "invalid_request_error",
                    "invalid_type",
                    f"messages[{position}]",
                ),
            )
        role = str(item.get("role"))
        content = item.get("content")
        message: Message = {
            "role": role,
            "content": text_of(content),
            "files": files_of(content, f"messages[{position}].content"),
        }
        if role == "assistant" and isinstance(item.get("tool_calls"), list) and item["tool_calls"]:
            calls = []
            for number, call in enumerate(item["tool_calls"]):
                where = f"messages[{position}].tool_calls[{number}]"
                call = call if isinstance(call, dict) else {}
                function = call.get("function")
                if not isinstance(function, dict):
                    raise missing_parameter(f"{where}.function")
                calls.append(
                    {
                        "call_id": required_string(call, "id", where),
                        "name": required_string(function, "name", f"{where}.function"),
                        "arguments": str(function.get("arguments") or ""),
                    }
                )
            message["tool_calls"] = calls
        elif role == "tool":
            message["call_id"] = required_string(item, "tool_call_id", f"messages[{position}]")
        messages.append(message)
    _check_chat_tool_messages(messages)
    return messages


def _check_chat_tool_messages(messages: list[Message]) -> None:
    """Chat rules: tool messages answer the assistant message just before them, all its calls."""
    waiting: list[str] = []  # call ids of the last assistant tool_calls still without a result
    asked_at: int | None = None
    for position, message in enumerate(messages):
        if message["role"] == "tool":
            if asked_at is None:
                raise invalid_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{position}].role",
                )
            if message["call_id"] not in waiting:
                raise invalid_request(
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
        raise invalid_request(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(waiting),
            f"messages.[{asked_at}].role",
        )


def check_responses_tool_outputs(conversation: list[Message]) -> None:
    """Responses rules: every output answers a known call, every call gets its output."""
    called: list[str] = []
    answered: set[str] = set()
    for message in conversation:
        called.extend(call["call_id"] for call in message.get("tool_calls") or ())
        if message["role"] == "tool":
            if message["call_id"] not in called:
                raise invalid_request(
                    "No tool call found for function call output with call_id "
                    f"{message['call_id']}.",
                    "input",
                )
            answered.add(message["call_id"])
    for call_id in called:
        if call_id not in answered:
            raise invalid_request(f"No tool output found for function call {call_id}.", "input")


def message_words(message: Message) -> int:
    words = count_words(text_of(message.get("content")))
    for call in message.get("tool_calls") or ():
        words += count_words(call["name"]) + count_words(call["arguments"])
    return words


def count_words(text: str) -> int:
    return len(text.split())
