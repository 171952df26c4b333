"""A conversation's visible path as Markdown or JSON, for download."""

from __future__ import annotations

from typing import Any

from chat.models import Thread, Turn


def as_json(thread: Thread, path: list[Turn]) -> dict[str, Any]:
    return {
        "title": thread.title,
        "model": thread.model,
        "api": thread.api,
        "params": thread.params,
        "created_at": thread.created_at.isoformat(),
        "turns": [
            {
                "user": turn.user_text,
                "answer": turn.output_text,
                "reasoning": turn.reasoning_text,
                "tool_calls": turn.tool_calls,
                "status": turn.status,
                "error": turn.error,
                "model": turn.model,
                "response_id": turn.response_id,
                "usage": {
                    "input_tokens": turn.input_tokens,
                    "output_tokens": turn.output_tokens,
                    "total_tokens": turn.total_tokens,
                    "cached_tokens": turn.cached_tokens,
                    "reasoning_tokens": turn.reasoning_tokens,
                },
                "created_at": turn.created_at.isoformat(),
            }
            for turn in path
        ],
    }


def as_markdown(thread: Thread, path: list[Turn]) -> str:
    lines = [f"# {thread.title}", ""]
    for turn in path:
        lines += ["## You", "", turn.user_text, ""]
        for call in turn.tool_calls:
            lines += [
                f"**Tool call `{call['name']}`** `{call['arguments']}` → {call['result']}",
                "",
            ]
        lines += [
            f"## {turn.model or 'Assistant'}",
            "",
            turn.output_text or f"_({turn.get_status_display()})_",
            "",
        ]
    return "\n".join(lines)
