"""Template filters for a tool call's record (a ``ToolCallRecord`` dict, which has no methods)."""

from __future__ import annotations

from django import template

from chat.services.tool_loop import ToolCallRecord, ToolCallStatus

register = template.Library()


@register.filter
def tool_status_label(call: ToolCallRecord) -> str:
    """What the card says; an unknown status (an older record) reads as done."""
    if call.get("approval") == "asked" and call.get("status") == ToolCallStatus.AWAITING:
        return "awaiting approval"  # an MCP server's call (chat/services/mcp/calls.py)
    try:
        return ToolCallStatus(call.get("status", "")).label
    except ValueError:
        return ToolCallStatus.DONE.label


@register.filter
def awaits_answer(call: ToolCallRecord) -> bool:
    """The user is asked for this call's result."""
    return call.get("status") == ToolCallStatus.AWAITING and call.get("approval") != "asked"


@register.filter
def awaits_approval(call: ToolCallRecord) -> bool:
    """The user is asked to approve this MCP call before it runs."""
    return call.get("status") == ToolCallStatus.AWAITING and call.get("approval") == "asked"
