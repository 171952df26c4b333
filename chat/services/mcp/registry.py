"""MCP servers as Django knows them: who may use which, their tools as last listed, and a
user's library copies of those tools (which threads and presets then offer like any tool)."""

from __future__ import annotations

import json
import logging
import re

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from chat.models import McpServer, McpTool, ToolDefinition
from chat.services import tools
from chat.services.mcp import client
from chat.services.mcp.client import McpUnavailable, ServerConfig, ToolInfo

log = logging.getLogger(__name__)

_NAME_RE = re.compile(tools.NAME_PATTERN)
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


class LibraryRefused(Exception):
    """Why a tool cannot be added to a library (shown to the user)."""


def config_of(server: McpServer) -> ServerConfig:
    """The plain connection settings (headers decrypted here, never leave the worker)."""
    return ServerConfig(
        server_id=server.pk,
        name=server.name,
        url=server.url,
        transport=server.transport,
        headers=tuple(sorted(server.headers.items())),
        connect_timeout=server.connect_timeout,
        call_timeout=server.call_timeout,
    )


def servers_for(user) -> QuerySet[McpServer]:
    """The enabled servers ``user`` may use: those without teams, and those of the user's teams."""
    return (
        McpServer.objects.filter(enabled=True)
        .filter(Q(teams__isnull=True) | Q(teams__members=user))
        .distinct()
    )


def can_use(user_id: int | None, server_id: int) -> bool:
    if user_id is None:
        return False
    return servers_for(user_id).filter(pk=server_id).exists()


# -- the tools as listed -----------------------------------------------------------------------


def _problem(info: ToolInfo) -> str:
    """Why a listed tool cannot be offered to a model, or ""."""
    if info.input_schema.get("type") != "object":
        return 'Its input schema does not have "type": "object" at the top.'
    size = len(json.dumps(info.input_schema).encode())
    if size > tools.MAX_SCHEMA_BYTES:
        return f"Its input schema is {size} bytes (at most {tools.MAX_SCHEMA_BYTES})."
    return tools.schema_error(info.input_schema) or ""


def store_tools(server: McpServer, listed: list[ToolInfo]) -> None:
    """Record the server's current list: new and changed tools, dropped ones kept unavailable,
    and the library copies (names kept, description and schema as the server says)."""
    by_name = {info.name: info for info in listed}
    with transaction.atomic():
        known = {
            tool.name: tool for tool in McpTool.objects.select_for_update().filter(server=server)
        }
        for name, info in by_name.items():
            problem = _problem(info)
            description = info.description[: tools.MAX_DESCRIPTION_CHARS]
            tool = known.get(name)
            if tool is None:
                McpTool.objects.create(
                    server=server,
                    name=name,
                    description=description,
                    input_schema=info.input_schema,
                    problem=problem,
                )
                continue
            tool.description, tool.input_schema = description, info.input_schema
            tool.available, tool.problem = True, problem
            tool.save(update_fields=["description", "input_schema", "available", "problem"])
            if not problem:
                ToolDefinition.objects.filter(mcp_tool=tool).update(
                    description=description, parameters=info.input_schema
                )
        McpTool.objects.filter(server=server).exclude(name__in=list(by_name)).update(
            available=False
        )
        server.tools_refreshed_at, server.last_error = timezone.now(), ""
        server.save(update_fields=["tools_refreshed_at", "last_error"])


def _note_failure(server: McpServer, message: str) -> None:
    server.last_error = message[:500]
    server.save(update_fields=["last_error"])


def refresh_now(server: McpServer) -> tuple[list[ToolInfo], str]:
    """List the tools over a connection of its own and store them (sync views: admin, library).
    Returns (tools, "") or ([], why it failed)."""
    try:
        listed = async_to_sync(client.list_once)(config_of(server))
    except McpUnavailable as error:
        message = f"{server.name}: {error}"
        _note_failure(server, message)
        return [], message
    store_tools(server, listed)
    return listed, ""


async def refresh(config: ServerConfig) -> None:
    """Re-list over this worker's pooled connection (the server said its list changed)."""
    connection = client.connection_for(config, refresh)
    try:
        listed = await connection.list_tools()
    except McpUnavailable as error:
        log.info("MCP server %s: could not re-list tools: %s", config.name, error)
        return
    server = await McpServer.objects.filter(pk=config.server_id).afirst()
    if server is not None:
        await database_sync_to_async(store_tools)(server, listed)


def pooled(server: McpServer):  # -> client.Connection
    """This worker's connection to ``server``; its list-changed events re-list the tools."""
    return client.connection_for(config_of(server), refresh)


# -- a user's library ----------------------------------------------------------------------------


def library_groups(user) -> list[tuple[McpServer, list[McpTool], set[int]]]:
    """For the tool library: each server the user may use, its tools, and which are added."""
    servers = list(servers_for(user).prefetch_related("tools"))
    added = set(
        ToolDefinition.objects.filter(owner=user, mcp_tool__isnull=False).values_list(
            "mcp_tool_id", flat=True
        )
    )
    return [(server, [t for t in server.tools.all() if t.available], added) for server in servers]


def _library_name(tool: McpTool, taken: set[str]) -> str:
    if _NAME_RE.match(tool.name) and tool.name not in taken:
        return tool.name
    name = _UNSAFE.sub("_", f"{tool.server.name}_{tool.name}")[:64]
    if name in taken or not _NAME_RE.match(name):
        raise LibraryRefused(
            _("You already have a tool named %(name)s; rename or delete it first.")
            % {"name": repr(tool.name)}
        )
    return name


def add_to_library(user, tool_id: int) -> ToolDefinition:
    """The user's copy of an MCP tool (existing or new). Raises ``LibraryRefused``."""
    tool = (
        McpTool.objects.select_related("server")
        .filter(pk=tool_id, available=True, server__in=servers_for(user))
        .first()
    )
    if tool is None:
        raise LibraryRefused(_("That tool is not offered to you."))
    if tool.problem:
        raise LibraryRefused(
            _("%(name)s cannot be offered to a model: %(problem)s")
            % {"name": tool.name, "problem": tool.problem}
        )
    existing = ToolDefinition.objects.filter(owner=user, mcp_tool=tool).first()
    if existing is not None:
        return existing
    taken = set(ToolDefinition.objects.filter(owner=user).values_list("name", flat=True))
    try:
        return ToolDefinition.objects.create(
            owner=user,
            name=_library_name(tool, taken),
            description=tool.description,
            parameters=tool.input_schema,
            mcp_tool=tool,
        )
    except IntegrityError as error:  # added twice at once
        raise LibraryRefused(_("That name was just taken; try again.")) from error
