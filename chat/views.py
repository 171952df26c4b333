"""HTTP views: parse, authorize, render. The product's logic lives in chat.services."""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from chat import export, fragments
from chat.forms import AccountCreationForm, RenameThreadForm
from chat.models import Preset, Provider, SiteSettings, Thread
from chat.request_ids import parse_id
from chat.services import access, compare, conversation, generation, providers
from chat.services import search as thread_search
from chat.signin.backends import ACCOUNT_BACKEND


def _thread_or_404(request: HttpRequest, thread_id: int) -> Thread:
    """A thread the user may read; 404 for any other id (no existence leak)."""
    thread = conversation.thread_for(request.user, thread_id)
    if thread is None:
        raise Http404("No such chat.")
    return thread


def _writable_thread_or_404(
    request: HttpRequest, thread_id: int, *, owner_only: bool = False
) -> Thread:
    """A thread the user may change: 404 if they cannot see it, 403 if they may only read it."""
    try:
        thread = conversation.writable_thread_for(request.user, thread_id, owner_only=owner_only)
    except conversation.ReadOnly as exc:
        raise PermissionDenied(str(exc)) from exc
    if thread is None:
        raise Http404("No such chat.")
    return thread


_sidebars = conversation.sidebar_lists


def _parse_model_choice(value: str) -> tuple[Provider | None, str]:
    """``"<provider id>:<model id>"`` from the model picker → (enabled provider, model)."""
    provider_id, _, model = value.partition(":")
    provider_pk = parse_id(provider_id)
    if provider_pk is None or not model:
        return None, ""
    return Provider.objects.filter(pk=provider_pk, enabled=True).first(), model


async def _model_context(
    request: HttpRequest, selected: str = "", *, refresh: bool = False
) -> dict:
    groups = await providers.all_models(refresh=refresh)
    if not selected:
        selected = request.session.get("last_model", "")
    available = [f"{g.provider_id}:{m}" for g in groups for m in g.models]
    if selected not in available and available:
        selected = available[0]
    return {"model_groups": groups, "selected_model": selected}


# -- first run and accounts --------------------------------------------------------------------


@login_not_required
def setup(request: HttpRequest) -> HttpResponse:
    """The first visitor of an empty install creates the first account, which becomes admin
    (unless ``FIRST_RUN_SETUP`` is off: the administrator is then created on the server)."""
    if not settings.FIRST_RUN_SETUP:
        return render(request, "registration/setup_disabled.html", status=404)
    User = get_user_model()
    if User.objects.exists():
        return redirect("chat:home")
    form = AccountCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            if User.objects.select_for_update().exists():
                return redirect("login")
            user = form.save(commit=False)
            user.is_staff = user.is_superuser = True
            user.save()
        login(request, user, backend=ACCOUNT_BACKEND)
        messages.success(request, "Welcome! Your account is the administrator of this Switchboard.")
        return redirect("chat:home")
    return render(request, "registration/setup.html", {"form": form})


@login_not_required
def signup(request: HttpRequest) -> HttpResponse:
    site = SiteSettings.load()
    if not site.allow_signup or not settings.LOCAL_LOGIN:
        raise Http404("Sign-up is turned off. Ask an administrator for an account.")
    domains = access.parse_domains(site.allowed_email_domains)
    form = AccountCreationForm(request.POST or None)
    if domains:
        form.fields["email"].required = True
        form.fields["email"].help_text = "An address at " + " or ".join(domains) + "."
    if request.method == "POST" and form.is_valid():
        if not access.email_domain_allowed(form.cleaned_data["email"], domains):
            form.add_error("email", "Sign-up is open to addresses at " + ", ".join(domains) + ".")
            return render(request, "registration/signup.html", {"form": form})
        user = form.save()
        login(request, user, backend=ACCOUNT_BACKEND)
        return redirect("chat:home")
    return render(request, "registration/signup.html", {"form": form})


# -- chat pages ----------------------------------------------------------------------------------


async def _new_chat_page(request: HttpRequest, *, refused: str = "") -> HttpResponse:
    """The new-chat page; after a refused first message (``refused``: why), with what was
    typed and chosen still in the form."""
    user = await request.auser()
    draft = request.POST if refused else {}
    context = await _model_context(request, draft.get("model", ""))
    context |= await sync_to_async(_sidebars)(user)
    context |= {
        "thread": None,
        "presets": await sync_to_async(list)(Preset.objects.filter(owner=user)),
        "apis": Provider.Api.choices,
        "draft": draft,
        "composer_error": refused,
    }
    # 200 even when refused, as Django does for a form with errors: a 4xx page is a console
    # error in the browser.
    return await sync_to_async(render)(request, "chat/thread.html", context)


@require_GET
async def home(request: HttpRequest) -> HttpResponse:
    return await _new_chat_page(request)


@require_POST
async def new_thread(request: HttpRequest) -> HttpResponse:
    """Create a chat from the first message and start answering it; then show the chat. A
    refused first message creates nothing."""
    user = await request.auser()
    text = request.POST.get("message", "")
    choice = request.POST.get("model", "")

    def create() -> Thread:
        provider, model = _parse_model_choice(choice)
        if provider is None:
            raise conversation.TurnRejected("Pick a model first.")
        conversation.validate_message(text, settings.MAX_MESSAGE_CHARS)
        api = request.POST.get("api", "")
        api = api if api in Provider.Api.values else ""
        thread = Thread.objects.create(owner=user, provider=provider, model=model, api=api)
        preset_pk = parse_id(request.POST.get("preset", ""))
        preset = Preset.objects.filter(owner=user, pk=preset_pk).first() if preset_pk else None
        if preset is not None:
            conversation.apply_preset(thread, preset)
        return thread

    try:
        models = request.POST.getlist("compare_models")  # chat/services/compare.py
        if models:
            turn = (await compare.start_new_comparison(user, create, text, models))[0]
        else:
            turn = await generation.start_new_thread(user, create, text)
    except conversation.TurnRejected as exc:
        # Nothing was created; the page keeps the message so it can be sent again.
        if request.htmx:
            return HttpResponse(fragments.error_notice(str(exc)))
        return await _new_chat_page(request, refused=str(exc))
    request.session["last_model"] = choice
    await request.session.asave()
    url = reverse("chat:thread", args=[turn.thread_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
async def thread_page(request: HttpRequest, thread_id: int) -> HttpResponse:
    user = await request.auser()

    def load() -> dict:
        thread = _thread_or_404(request, thread_id)
        page = fragments.path_page(thread, generation.running_snapshots())
        return {"thread": thread, **page, **_sidebars(user)}

    context = await sync_to_async(load)()
    thread = context["thread"]
    selected = f"{thread.provider_id}:{thread.model}" if thread.provider_id else ""
    context |= await _model_context(request, selected)
    context["busy"] = any(not t["turn"].is_finished for t in context["turns"])
    return await sync_to_async(render)(request, "chat/thread.html", context)


@require_GET
def earlier_turns(request: HttpRequest, thread_id: int) -> HttpResponse:
    """The "Show earlier messages" button: the page of turns above ``before`` (with the next
    such button), swapped in place of the button that asked for it."""
    thread = _thread_or_404(request, thread_id)
    before = parse_id(request.GET.get("before", ""))
    page = (
        fragments.path_page(thread, generation.running_snapshots(), before)
        if before is not None
        else None
    )
    if page is None:
        raise Http404("No such message.")
    return render(request, "chat/thread.html#history-page", page)


@require_POST
def set_model(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _writable_thread_or_404(request, thread_id)
    provider, model = _parse_model_choice(request.POST.get("model", ""))
    if provider is None:
        return HttpResponse(fragments.error_notice("That model is not available."), status=422)
    thread.provider, thread.model = provider, model
    thread.save(update_fields=["provider", "model", "updated_at"])
    request.session["last_model"] = request.POST["model"]
    return HttpResponse(fragments.error_notice(""))


@require_POST
async def refresh_models(request: HttpRequest) -> HttpResponse:
    context = await _model_context(request, request.POST.get("model", ""), refresh=True)
    return await sync_to_async(render)(request, "chat/thread.html#model-picker", context)


@require_POST
def rename_thread(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _writable_thread_or_404(request, thread_id, owner_only=True)
    form = RenameThreadForm(request.POST)
    if form.is_valid():
        thread.title = form.cleaned_data["title"]
        thread.save(update_fields=["title", "updated_at"])
    return render(
        request,
        "chat/thread.html#thread-title",
        {"thread": thread, **_sidebars(request.user)},
    )


@require_POST
def delete_thread(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _writable_thread_or_404(request, thread_id, owner_only=True)
    thread.delete()  # its running answers are stopped, wherever they run (chat.signals)
    messages.success(request, "Chat deleted.")
    url = reverse("chat:home")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
def export_thread(request: HttpRequest, thread_id: int, fmt: str) -> HttpResponse:
    """The visible conversation as Markdown or JSON, downloaded as a file."""
    thread = _thread_or_404(request, thread_id)
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


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Chats the user can see that match ``q``: a full page, or only the results for htmx."""
    query = thread_search.normalize_query(request.GET.get("q", ""))
    context = {
        "query": query,
        "searched": thread_search.is_searchable(query),
        "results": thread_search.search_threads(request.user, query),
    }
    if request.htmx:
        response = render(request, "chat/search.html#results", context)
    else:
        context |= {"thread": None, **_sidebars(request.user)}
        response = render(request, "chat/search.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response
