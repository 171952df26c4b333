"""Changes to one thread (model, title, deletion) and its export."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from chat import export, fragments
from chat.forms import RenameThreadForm
from chat.services import conversation, threads
from chat.views.htmx_request import HtmxHttpRequest
from chat.views.thread_access import owned_thread_or_404, thread_or_404, writable_thread_or_404


@require_POST
def set_model(request: HtmxHttpRequest, thread_id: int) -> HttpResponse:
    thread = writable_thread_or_404(request, thread_id)
    try:
        threads.choose_model(thread, request.POST.get("model", ""), user=request.user)
    except threads.ModelRefused as refused:
        # A model the user may not use: 200, so htmx swaps the notice in.
        status = 422 if refused.unknown else 200
        return HttpResponse(fragments.error_notice(str(refused)), status=status)
    request.session["last_model"] = request.POST["model"]
    return HttpResponse(fragments.error_notice(""))


@require_POST
def rename_thread(request: HtmxHttpRequest, thread_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    form = RenameThreadForm(request.POST)
    if form.is_valid():
        threads.rename(thread, form.cleaned_data["title"])
    return render(
        request,
        "chat/thread.html#thread-title",
        {"thread": thread, **conversation.sidebar_lists(request.user)},
    )


@require_POST
def delete_thread(request: HtmxHttpRequest, thread_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    thread.delete()  # its running answers are stopped, wherever they run (chat.signals)
    messages.success(request, _("Chat deleted."))
    url = reverse("chat:home")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
def export_thread(request: HtmxHttpRequest, thread_id: int, fmt: str) -> HttpResponse:
    """The visible conversation as Markdown or JSON, downloaded as a file."""
    thread = thread_or_404(request, thread_id)
    path = conversation.thread_path(thread)
    if fmt == "json":
        body = json.dumps(export.as_json(thread, path), indent=2, ensure_ascii=False)
        content_type = "application/json"
    else:
        body, content_type = export.as_markdown(thread, path), "text/markdown; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    filename = f"{slugify(thread.title) or 'chat'}-{thread.pk}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
