"""Views of the thread settings panel (API, request parameters, tools) and of presets."""

from __future__ import annotations

import dataclasses

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from chat.models import Preset, Provider, Thread, ToolDefinition
from chat.request_ids import parse_id
from chat.services import parameters, prompts
from chat.views import _writable_thread_or_404


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
            named = tuple((f"{prefix}{t.name}", f"Call {t.name}") for t in tools)
            spec = dataclasses.replace(spec, choices=spec.choices + named)
        row = (spec, values.get(spec.name, ""), errors.get(spec.name, ""))
        groups.setdefault(spec.group, []).append(row)
    if selected_tools is None:
        selected_tools = set(thread.tools.values_list("pk", flat=True))
    context = {
        "thread": thread,
        "api": api,
        "apis": Provider.Api.choices,
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
    if value in Provider.Api.values:
        return value
    return thread.api or (
        thread.provider.default_api if thread.provider else Provider.Api.RESPONSES
    )


@require_http_methods(["GET", "POST"])
def thread_settings(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _writable_thread_or_404(request, thread_id, owner_only=True)
    if request.method == "GET":
        api = _api_of(request.GET.get("api", ""), thread)
        return _panel(request, thread, api=api, values=parameters.form_values(thread.params))

    api = _api_of(request.POST.get("api", ""), thread)
    tool_ids = {parse_id(pk) for pk in request.POST.getlist("tools")}
    if None in tool_ids:  # the form only ever sends ids of the user's tools
        return HttpResponseBadRequest("That tool id is not valid.", content_type="text/plain")
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
    with transaction.atomic():
        thread.api, thread.params = api, params
        thread.save(update_fields=["api", "params", "updated_at"])
        thread.tools.set(chosen)
    return _panel(
        request, thread, api=api, values=parameters.form_values(params), notice="Settings saved."
    )


@require_POST
def save_preset(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _writable_thread_or_404(request, thread_id, owner_only=True)
    name = request.POST.get("preset_name", "").strip()[:100]
    values = parameters.form_values(thread.params)
    if not name:
        return _panel(
            request,
            thread,
            api=_api_of("", thread),
            values=values,
            errors={"preset_name": "Give the preset a name."},
        )
    try:
        with transaction.atomic():
            preset, _ = Preset.objects.update_or_create(
                owner=request.user,
                name=name,
                defaults={
                    "provider": thread.provider,
                    "model": thread.model,
                    "api": thread.api,
                    "params": thread.params,
                    "start_prompt": prompts.start_prompt(request.user, request.POST),
                },
            )
            preset.tools.set(thread.tools.all())
    except IntegrityError:
        return _panel(
            request,
            thread,
            api=_api_of("", thread),
            values=values,
            errors={"preset_name": "That name is taken."},
        )
    return _panel(
        request, thread, api=_api_of("", thread), values=values, notice=f"Saved as preset “{name}”."
    )
