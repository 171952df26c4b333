"""Views of the thread settings panel (API, request parameters, tools) and of presets."""

from __future__ import annotations

import dataclasses

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from chat.models import Preset, Thread, ToolDefinition
from chat.request_ids import parse_id
from chat.services import conversation, parameters, prompts, threads
from chat.upstream.request import Api
from chat.views.thread_access import owned_thread_or_404


def _panel(
    request: HttpRequest,
    thread: Thread,
    *,
    api: str,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    selected_tools: set[int] | None = None,
    notice: str = "",
) -> HttpResponse:
    errors = errors or {}
    tools = list(ToolDefinition.objects.filter(owner=request.user))
    groups: dict[str, list] = {}
    for spec in parameters.specs_for(api):
        if spec.name == "tool_choice":  # a named function is one more choice per tool
            prefix = parameters.FUNCTION_PREFIX
            named = tuple(
                (f"{prefix}{t.name}", _("Call %(name)s") % {"name": t.name}) for t in tools
            )
            spec = dataclasses.replace(spec, choices=spec.choices + named)
        row = (spec, values.get(spec.name, ""), errors.get(spec.name, ""))
        groups.setdefault(spec.group, []).append(row)
    if selected_tools is None:
        selected_tools = set(thread.tools.values_list("pk", flat=True))
    context = {
        "thread": thread,
        "api": api,
        "apis": Api.choices(),
        "groups": groups,
        "values": values,
        "errors": errors,
        "tools": tools,
        "selected_tools": selected_tools,
        "presets": Preset.objects.filter(owner=request.user),
        "prompts": prompts.usable_prompts(request.user),
        "notice": notice,
    }
    return render(request, "chat/settings.html#panel", context)


def _api_of(value: str, thread: Thread) -> str:
    """The API the form asks for, else the thread's."""
    return value if value in Api.values() else conversation.api_for(thread, thread.provider)


@require_http_methods(["GET", "POST"])
def thread_settings(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    if request.method == "GET":
        api = _api_of(request.GET.get("api", ""), thread)
        return _panel(request, thread, api=api, values=parameters.form_values(thread.params))

    api = _api_of(request.POST.get("api", ""), thread)
    tool_ids = {parse_id(pk) for pk in request.POST.getlist("tools")}
    if None in tool_ids:  # the form only ever sends ids of the user's tools
        return HttpResponseBadRequest(_("That tool id is not valid."), content_type="text/plain")
    chosen = list(ToolDefinition.objects.filter(owner=request.user, pk__in=tool_ids))
    params, errors = parameters.validate(request.POST, api, tool_names={t.name for t in chosen})
    if errors:
        # Nothing is saved; the form comes back with what was typed and why it was refused.
        return _panel(
            request,
            thread,
            api=api,
            values=request.POST.dict(),
            errors=errors,
            selected_tools=tool_ids,
        )
    threads.save_settings(thread, api=api, params=params, tools=chosen)
    return _panel(
        request, thread, api=api, values=parameters.form_values(params), notice=_("Settings saved.")
    )


@require_POST
def save_preset(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    values = parameters.form_values(thread.params)
    try:
        preset = threads.save_preset(
            request.user,
            thread,
            request.POST.get("preset_name", ""),
            start_prompt=prompts.start_prompt(request.user, request.POST),
        )
    except threads.PresetRefused as exc:
        errors, notice = {"preset_name": str(exc)}, ""
    else:
        errors, notice = {}, _("Saved as preset “%(name)s”.") % {"name": preset.name}
    return _panel(
        request, thread, api=_api_of("", thread), values=values, errors=errors, notice=notice
    )
