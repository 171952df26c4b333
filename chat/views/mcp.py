"""The tool library's MCP section: each server's tools (read-only schemas), refreshed on demand,
and "Add" to make one a tool of the user's library (then chosen per chat like any tool)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from chat.services.mcp import registry
from chat.views.tool_library import _library


def _section(request: HttpRequest, **extra) -> HttpResponse:
    context = {"mcp_groups": registry.library_groups(request.user)} | extra
    return render(request, "chat/mcp_tools.html", context)


@require_POST
def refresh_server(request: HttpRequest, server_id: int) -> HttpResponse:
    server = registry.servers_for(request.user).filter(pk=server_id).first()
    if server is None:
        raise Http404(_("No such MCP server."))
    listed, error = registry.refresh_now(server)
    notice = error or _("%(server)s: %(count)d tools listed.") % {
        "server": server.name,
        "count": len(listed),
    }
    return _section(request, mcp_notice=notice, mcp_error=bool(error))


@require_POST
def add_tool(request: HttpRequest, tool_id: int) -> HttpResponse:
    try:
        tool = registry.add_to_library(request.user, tool_id)
    except registry.LibraryRefused as refusal:
        return _section(request, mcp_notice=str(refusal), mcp_error=True)
    # The MCP section, and the library (out of band) with the tool in it.
    section = _section(
        request, mcp_notice=_("Added “%(name)s”.") % {"name": tool.name}
    ).content.decode()
    library = render(request, "chat/tools.html#tool-library", _library(request)).content.decode()
    library = library.replace(
        '<div id="tool-library"', '<div id="tool-library" hx-swap-oob="true"', 1
    )
    return HttpResponse(section + library)
