"""A conversation's visible path as Markdown or JSON, for download."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from chat.models import TURN_USAGE_FIELDS, Thread, Turn

# Marks Switchboard's own export, which chat/services/importing.py reads back.
FORMAT = "switchboard"
VERSION = 1


def as_json(thread: Thread, path: list[Turn]) -> dict[str, Any]:
    """``turns``: the visible path; ``tree``: every turn with its ``id`` and ``parent`` (the
    branches), and ``current`` the turn on screen, so an import rebuilds the whole thread."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": thread.title,
        "model": thread.model,
        "api": thread.api,
        "params": thread.params,
        "tools": [tool.name for tool in thread.tools.all()],
        "created_at": thread.created_at.isoformat(),
        "current": thread.current_turn_id,
        "turns": [_turn(turn) for turn in path],
        "tree": [
            {"id": turn.pk, "parent": turn.parent_id, **_turn(turn)}
            for turn in thread.turns.order_by("created_at", "pk")
        ],
    }


def _turn(turn: Turn) -> dict[str, Any]:
    return {
        "user": turn.user_text,
        "answer": turn.output_text,
        "reasoning": turn.reasoning_text,
        "tool_calls": turn.tool_calls,
        "status": turn.status,
        "error": turn.error,
        "model": turn.model,
        "api": turn.api,
        "params": turn.params,
        "response_id": turn.response_id,
        "usage": {name: getattr(turn, name) for name in TURN_USAGE_FIELDS},
        "created_at": turn.created_at.isoformat(),
    }


def as_markdown(thread: Thread, path: list[Turn]) -> str:
    lines = [f"# {thread.title}", ""]
    for turn in path:
        lines += [f"## {_('You')}", "", turn.user_text, ""]
        for call in turn.tool_calls:
            lines += [
                _("**Tool call `%(name)s`** `%(arguments)s` → %(result)s")
                % {"name": call["name"], "arguments": call["arguments"], "result": call["result"]},
                "",
            ]
        lines += [
            f"## {turn.model or _('Assistant')}",
            "",
            turn.output_text or f"_({turn.get_status_display()})_",
            "",
        ]
    return "\n".join(lines)
