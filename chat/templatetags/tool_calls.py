"""Template filters for a tool call's record (a ``ToolCallRecord`` dict, which has no methods)."""

from __future__ import annotations

from django import template

from chat.services.tool_loop import ToolCallRecord, ToolCallStatus

register = template.Library()


@register.filter
def tool_status_label(call: ToolCallRecord) -> str:
    """What the card says; an unknown status (an older record) reads as done."""
    try:
        return ToolCallStatus(call.get("status", "")).label
    except ValueError:
        return ToolCallStatus.DONE.label


@register.filter
def awaits_answer(call: ToolCallRecord) -> bool:
    """The user is asked for this call's result."""
    return call.get("status") == ToolCallStatus.AWAITING
