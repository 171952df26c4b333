"""Views of a user's tool library: create, edit and delete function tools (htmx, inline errors)."""

from __future__ import annotations

import json

from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from chat.models import ToolDefinition
from chat.services import tools
from chat.services.mcp import registry as mcp_registry

EXAMPLE_SCHEMA = json.dumps(
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, indent=2
)


def _tool_or_404(request: HttpRequest, tool_id: int) -> ToolDefinition:
    tool = ToolDefinition.objects.filter(owner=request.user, pk=tool_id).first()
    if tool is None:
        raise Http404(_("No such tool."))
    return tool


def _library(request: HttpRequest, **extra) -> dict:
    return {
        "tools": ToolDefinition.objects.filter(owner=request.user),
        "builtins": tools.BUILTINS,
        "values": {"name": "", "description": "", "parameters": EXAMPLE_SCHEMA},
        "errors": {},
    } | extra


@require_GET
def library(request: HttpRequest) -> HttpResponse:
    context = _library(request, mcp_groups=mcp_registry.library_groups(request.user))
    return render(request, "chat/tools.html", context)


def _save(request: HttpRequest, tool: ToolDefinition | None) -> HttpResponse:
    values = {key: request.POST.get(key, "") for key in ("name", "description", "parameters")}
    schema, errors = tools.validate_definition(
        values["name"].strip(), values["description"], values["parameters"]
    )
    if not errors:
        tool = tool or ToolDefinition(owner=request.user)
        tool.name, tool.description, tool.parameters = (
            values["name"].strip(),
            values["description"],
            schema,
        )
        try:
            tool.save()
        except IntegrityError:
            errors = {"name": _("You already have a tool with that name.")}
    if errors:
        context = _library(request, values=values, errors=errors, editing=tool)
        return render(request, "chat/tools.html#tool-form", context)
    # A fresh form, and the library (out of band) with the saved tool in it.
    context = _library(request, notice=_("Saved “%(name)s”.") % {"name": tool.name})
    form = render(request, "chat/tools.html#tool-form", context).content.decode()
    library = render(request, "chat/tools.html#tool-library", context).content.decode()
    library = library.replace(
        '<div id="tool-library"', '<div id="tool-library" hx-swap-oob="true"', 1
    )
    return HttpResponse(form + library)


@require_POST
def create_tool(request: HttpRequest) -> HttpResponse:
    return _save(request, None)


@require_GET
def edit_tool(request: HttpRequest, tool_id: int) -> HttpResponse:
    tool = _tool_or_404(request, tool_id)
    values = {
        "name": tool.name,
        "description": tool.description,
        "parameters": json.dumps(tool.parameters, indent=2),
    }
    return render(
        request, "chat/tools.html#tool-form", _library(request, values=values, editing=tool)
    )


@require_POST
def update_tool(request: HttpRequest, tool_id: int) -> HttpResponse:
    tool = _tool_or_404(request, tool_id)
    if tool.mcp_tool_id:  # its MCP server defines it
        return HttpResponseBadRequest(
            _("This tool's server defines it."), content_type="text/plain"
        )
    return _save(request, tool)


@require_POST
def delete_tool(request: HttpRequest, tool_id: int) -> HttpResponse:
    _tool_or_404(request, tool_id).delete()
    return render(
        request, "chat/tools.html#tool-library", _library(request, notice=_("Tool deleted."))
    )


@require_POST
def add_builtin(request: HttpRequest, key: str) -> HttpResponse:
    builtin = tools.BUILTINS.get(key)
    if builtin is None:
        raise Http404(_("No such built-in tool."))
    ToolDefinition.objects.update_or_create(
        owner=request.user,
        name=builtin.name,
        defaults={
            "description": builtin.description,
            "parameters": builtin.parameters,
            "builtin": key,
        },
    )
    return render(
        request,
        "chat/tools.html#tool-library",
        _library(request, notice=_("Added “%(name)s”.") % {"name": builtin.name}),
    )
