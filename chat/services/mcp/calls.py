"""Running the MCP tool calls of one tool-loop step (the hook in the turn runner).

A call's record in ``Turn.tool_calls`` gains: ``mcp_server`` (its name, for the card),
``approval`` ("asked" while the card shows Approve/Reject), ``duration_ms``, and ``images``
(data the Responses API receives as image input). Statuses: ``awaiting`` (approval asked) →
``approved`` → ``running`` → ``done`` | ``error``; ``rejected`` when the user declines.

Every failure becomes the call's result, written for the model, and the turn goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from mcp.shared.exceptions import MCPError

from chat.models import McpCall, McpTool
from chat.services.mcp import client, registry, results
from chat.services.mcp.client import McpUnavailable, ServerConfig


@dataclass(frozen=True)
class Target:
    """Where one call goes, resolved (and access-checked) from the database."""

    config: ServerConfig
    tool_name: str
    requires_approval: bool


def _resolve(tool_id: int, user_id: int | None) -> Target | str:
    """The call's server and tool, or why it cannot be called (the model reads it)."""
    tool = McpTool.objects.select_related("server").filter(pk=tool_id).first()
    if tool is None:
        return "Error: this MCP tool no longer exists (its server was removed)."
    server = tool.server
    if not server.enabled:
        return f"Error: the MCP server {server.name!r} is switched off."
    if not registry.can_use(user_id, server.pk):
        return f"Error: you may not use the MCP server {server.name!r}."
    if not tool.available:
        return f"Error: the MCP server {server.name!r} no longer offers the tool {tool.name!r}."
    return Target(registry.config_of(server), tool.name, server.requires_approval)


def answer_approval(call: dict[str, Any], result: str | None) -> bool:
    """The user's Approve (any result) or Reject (``None``) on a call waiting for approval.
    False when the call is not one (then it is an ordinary user-answered call)."""
    if call.get("approval") != "asked":
        return False
    if result is None:
        call["status"], call["result"] = "rejected", "The user did not approve this tool call."
        call["approval"] = "rejected"
    else:
        call["status"], call["approval"] = "approved", "approved"
    return True


def _is_mcp(call: dict[str, Any], offered: dict[str, Any]) -> int | None:
    spec = offered.get(call["name"])
    return getattr(spec, "mcp_tool", None) if spec is not None else None


async def run_calls(
    calls: list[dict[str, Any]],
    offered: dict[str, Any],
    *,
    api: str,
    user_id: int | None,
    turn_id: int,
    changed: Callable[[], None],
) -> bool:
    """Run the MCP calls of one step that are ready (checked, not yet run; or approved), all at
    once. Calls of servers that want approval are marked for it instead. Returns True when no
    call of the step waits for the user any more."""
    ready: list[tuple[dict[str, Any], Target]] = []
    for call in calls:
        tool_id = _is_mcp(call, offered)
        if tool_id is None or call["status"] not in ("awaiting", "approved"):
            continue
        if call["status"] == "awaiting" and call.get("approval") == "asked":
            continue
        target = await database_sync_to_async(_resolve)(tool_id, user_id)
        if isinstance(target, str):
            call["status"], call["result"] = "error", target
            await _audit(call, None, user_id, turn_id, "refused", 0, target)
            continue
        call["mcp_server"] = target.config.name
        if target.requires_approval and call["status"] == "awaiting":
            call["approval"] = "asked"
            continue
        call["status"] = "running"
        ready.append((call, target))
    if ready:
        changed()
        await asyncio.gather(
            *(_run_one(call, target, api, user_id, turn_id) for call, target in ready)
        )
    return all(call["status"] != "awaiting" for call in calls)


async def _run_one(
    call: dict[str, Any], target: Target, api: str, user_id: int | None, turn_id: int
) -> None:
    config = target.config
    arguments = json.loads(call["arguments"] or "{}")  # checked against the schema before
    started = time.monotonic()
    try:
        connection = client.connection_for(config, registry.refresh)
        result = await connection.call_tool(target.tool_name, arguments)
    except asyncio.CancelledError:
        call["status"], call["result"] = "error", "Stopped before the tool answered."
        call["duration_ms"] = _ms(started)
        await asyncio.shield(
            _audit(call, target, user_id, turn_id, "cancelled", call["duration_ms"], "")
        )
        raise
    except TimeoutError:
        status, text = (
            "timeout",
            (
                f"Error: the MCP server {config.name!r} did not answer within "
                f"{config.call_timeout:g} seconds; the call was abandoned."
            ),
        )
    except McpUnavailable as error:
        status, text = (
            "unavailable",
            f"Error: the MCP server {config.name!r} is unavailable: {error}.",
        )
    except MCPError as error:
        status, text = "error", f"Error from the MCP server {config.name!r}: {error.error.message}"
    else:
        shaped, images = results.shape(result, api, settings.MCP_RESULT_MAX_CHARS)
        if result.is_error:
            status, text = "error", f"Error: the tool reported a failure: {shaped}"
        else:
            status, text = "done", shaped
            if images:
                call["images"] = images
    call["status"] = "done" if status == "done" else "error"
    call["result"], call["duration_ms"] = text, _ms(started)
    detail = "" if status == "done" else text
    await _audit(call, target, user_id, turn_id, status, call["duration_ms"], detail)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _audit(
    call: dict[str, Any],
    target: Target | None,
    user_id: int | None,
    turn_id: int,
    status: str,
    duration_ms: int,
    detail: str,
) -> None:
    arguments = None
    if settings.MCP_AUDIT_ARGUMENTS:
        try:
            arguments = json.loads(call["arguments"] or "{}")
        except ValueError:
            arguments = {"unparsed": call["arguments"][:2000]}
    await McpCall.objects.acreate(
        server_id=target.config.server_id if target else None,
        server_name=(target.config.name if target else call.get("mcp_server", ""))[:100],
        tool_name=(target.tool_name if target else call["name"])[:200],
        user_id=user_id,
        turn_id=turn_id,
        status=status,
        duration_ms=duration_ms,
        detail=detail[:2000],
        arguments=arguments,
    )
