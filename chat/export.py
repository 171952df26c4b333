"""A conversation's visible path as Markdown or JSON, for download."""

from __future__ import annotations

from typing import Any

from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.translation import gettext as _

from chat.models import TURN_USAGE_FIELDS, Attachment, Thread, Turn
from chat.services.attachments import linking

# Marks Switchboard's own export, which chat/services/importing.py reads back.
FORMAT = "switchboard"
VERSION = 1


def as_json(thread: Thread, path: list[Turn]) -> dict[str, Any]:
    """``turns``: the visible path; ``tree``: every turn with its ``id`` and ``parent`` (the
    branches), and ``current`` the turn on screen, so an import rebuilds the whole thread."""
    files = linking.of_turns(thread.turns.values_list("pk", flat=True))
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
        "turns": [_turn(turn, files.get(turn.pk, [])) for turn in path],
        "tree": [
            {"id": turn.pk, "parent": turn.parent_id, **_turn(turn, files.get(turn.pk, []))}
            for turn in thread.turns.order_by("created_at", "pk")
        ],
    }


def _file(attachment: Attachment) -> dict[str, Any]:
    """A file's description (its bytes stay on the server, behind the thread's access)."""
    return {
        "name": attachment.name,
        "type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "from_model": attachment.from_model,
        "url": reverse("chat:attachment", args=[attachment.pk]),
    }


def _turn(turn: Turn, files: list[Attachment]) -> dict[str, Any]:
    return {
        "attachments": [_file(a) for a in files],
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
    files = linking.of_turns(turn.pk for turn in path)
    for turn in path:
        lines += [f"## {_('You')}", "", turn.user_text, ""]
        lines += _file_links([a for a in files.get(turn.pk, []) if not a.from_model])
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


def _file_links(files: list[Attachment]) -> list[str]:
    """A message's files as Markdown links (to the server, which checks who may read them)."""
    if not files:
        return []
    lines = [
        f"- [{_escape_link_text(a.name)}]({reverse('chat:attachment', args=[a.pk])}) "
        f"({a.content_type}, {filesizeformat(a.size)})"
        for a in files
    ]
    return [*lines, ""]


def _escape_link_text(name: str) -> str:
    return "".join("\\" + c if c in "[]()\\*_`" else c for c in name)
