"""The chat pages: the new-chat page and its first message, a thread's page and its earlier
turns, and the model picker's list."""

from __future__ import annotations

import functools

from asgiref.sync import sync_to_async
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from chat import fragments
from chat.models import Preset
from chat.request_ids import parse_id
from chat.services import (
    compare,
    conversation,
    feedback,
    model_access,
    model_choice,
    providers,
    threads,
)
from chat.services.attachments import composer as attachment_composer
from chat.services.attachments import linking as attachment_linking
from chat.services.refusals import TurnRejected
from chat.services.turns import launch, registry
from chat.upstream.request import Api
from chat.views.htmx_request import HtmxHttpRequest
from chat.views.thread_access import thread_or_404


async def _model_context(
    request: HtmxHttpRequest, selected: str = "", *, refresh: bool = False
) -> dict:
    groups = await providers.all_models(refresh=refresh)
    if not selected:
        selected = request.session.get("last_model", "")
    # Only the models the user may use; a new member starts on their team's default model.
    groups, selected = await sync_to_async(model_choice.picker)(
        await request.auser(), groups, selected
    )
    return {"model_groups": groups, "selected_model": selected}


async def _new_chat_page(request: HtmxHttpRequest, *, refused: str = "") -> HttpResponse:
    """The new-chat page; after a refused first message (``refused``: why), with what was
    typed and chosen still in the form."""
    user = await request.auser()
    draft = request.POST if refused else {}
    context = await _model_context(request, draft.get("model", ""))
    context |= await sync_to_async(conversation.sidebar_lists)(user)
    context |= await sync_to_async(attachment_composer.composer_context)(user, None)
    context |= {
        "thread": None,
        "presets": await sync_to_async(list)(Preset.objects.filter(owner=user)),
        "apis": Api.choices(),
        "draft": draft,
        "composer_error": refused,
    }
    # 200 even when refused, as Django does for a form with errors: a 4xx page is a console
    # error in the browser.
    return await sync_to_async(render)(request, "chat/thread.html", context)


@require_GET
async def home(request: HtmxHttpRequest) -> HttpResponse:
    return await _new_chat_page(request)


@require_POST
async def new_thread(request: HtmxHttpRequest) -> HttpResponse:
    """Create a chat from the first message and start answering it; then show the chat. A
    refused first message creates nothing."""
    user = await request.auser()
    text = request.POST.get("message", "")
    choice = request.POST.get("model", "")
    attachments = request.POST.getlist("attachments")

    create = functools.partial(
        threads.create_thread,
        user,
        model_choice=choice,
        api=request.POST.get("api", ""),
        preset_id=parse_id(request.POST.get("preset", "")),
        text=text,
        has_files=bool(attachments),
    )

    try:
        models = request.POST.getlist("compare_models")  # chat/services/compare.py
        if models:
            attachment_linking.refuse_in_comparison(attachments)
            turn = (await compare.start_new_comparison(user, create, text, models))[0]
        else:
            ids = attachment_linking.parse_ids(attachments)
            turn = await launch.start_new_thread(user, create, text, ids)
    except TurnRejected as exc:
        # Nothing was created; the page keeps the message so it can be sent again.
        if request.htmx:
            return HttpResponse(fragments.error_notice(str(exc)))
        return await _new_chat_page(request, refused=str(exc))
    request.session["last_model"] = choice
    await request.session.asave()
    url = reverse("chat:thread", args=[turn.thread_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
async def thread_page(request: HtmxHttpRequest, thread_id: int) -> HttpResponse:
    user = await request.auser()

    def load() -> dict:
        thread = thread_or_404(request, thread_id)
        page = fragments.path_page(thread, registry.running_snapshots())
        feedback.attach(user, page["turns"])  # the viewer's 👍/👎 under each answer
        refused = model_access.refusal_for_thread(user, thread)  # a collaborator's, say
        return {
            "thread": thread,
            **page,
            **conversation.sidebar_lists(user),
            **attachment_composer.composer_context(user, thread),
            "model_refused": refused,
        }

    context = await sync_to_async(load)()
    thread = context["thread"]
    selected = f"{thread.provider_id}:{thread.model}" if thread.provider_id else ""
    context |= await _model_context(request, selected)
    context["busy"] = any(not t["turn"].is_finished for t in context["turns"])
    return await sync_to_async(render)(request, "chat/thread.html", context)


@require_GET
def earlier_turns(request: HtmxHttpRequest, thread_id: int) -> HttpResponse:
    """The "Show earlier messages" button: the page of turns above ``before`` (with the next
    such button), swapped in place of the button that asked for it."""
    thread = thread_or_404(request, thread_id)
    before = parse_id(request.GET.get("before", ""))
    page = (
        fragments.path_page(thread, registry.running_snapshots(), before)
        if before is not None
        else None
    )
    if page is None:
        raise Http404(_("No such message."))
    feedback.attach(request.user, page["turns"])  # the viewer's 👍/👎 under each answer
    return render(request, "chat/thread.html#history-page", page)


@require_POST
async def refresh_models(request: HtmxHttpRequest) -> HttpResponse:
    context = await _model_context(request, request.POST.get("model", ""), refresh=True)
    return await sync_to_async(render)(request, "chat/thread.html#model-picker", context)
