"""The sidebar's views: older chats as you scroll, each chat's menu, folders, the archive.

Every change answers htmx with the redrawn sidebar (``#sidebar-lists``), and a plain form post
with a redirect back. Only a chat's owner organises it: any other id is a 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from chat.models import Folder, Thread
from chat.request_ids import parse_id
from chat.services import organise, sidebar

_THREAD_PATH = re.compile(r"/t/([0-9]{1,19})/")


def _current_thread(request: HttpRequest) -> SimpleNamespace | None:
    """The chat open on the page that asked (its sidebar entry stays marked as current)."""
    found = _THREAD_PATH.search(request.headers.get("HX-Current-URL", ""))
    return SimpleNamespace(pk=int(found.group(1))) if found else None


def _answer(request: HttpRequest, error: str = "") -> HttpResponse:
    if request.htmx:
        context = {
            "thread": _current_thread(request),
            "sidebar_error": error,
            **sidebar.sidebar_context(request.user),
        }
        return render(request, "chat/sidebar.html#lists", context)
    if error:
        messages.error(request, error)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("chat:home")
    return redirect(target)


def _answer_after(request: HttpRequest, change: Callable[[], object]) -> HttpResponse:
    """Make ``change``; the sidebar, with the reason when ``organise`` refused it."""
    try:
        change()
    except organise.Refused as exc:
        return _answer(request, str(exc))
    return _answer(request)


def _thread(request: HttpRequest, thread_id: int) -> Thread:
    thread = organise.own_thread(request.user, thread_id)
    if thread is None:
        raise Http404(_("No such chat."))
    return thread


def _folder(request: HttpRequest, folder_id: int | None) -> Folder:
    folder = organise.own_folder(request.user, folder_id) if folder_id else None
    if folder is None:
        raise Http404(_("No such folder."))
    return folder


def _flag(request: HttpRequest, name: str) -> bool:
    return request.POST.get(name, "1") != "0"


@require_GET
def more_chats(request: HttpRequest) -> HttpResponse:
    """The next page of a list (the dated one, a folder's, or the archive), swapped in place of
    the sentinel that asked for it when it scrolled into view."""
    folder_scope = "folder" in request.GET
    if folder_scope:
        folder = _folder(request, parse_id(request.GET["folder"]))
        chats, grouped, scope = sidebar.folder_chats(folder), False, f"folder={folder.pk}"
    elif request.GET.get("archived") == "1":
        chats, grouped, scope = sidebar.archived_chats(request.user), False, "archived=1"
    else:
        chats, grouped, scope = sidebar.main_chats(request.user), True, ""
    try:
        page = sidebar.page_of(
            chats,
            request.GET.get("after", ""),
            last_group=request.GET.get("group", "")[:40],
            grouped=grouped,
        )
    except sidebar.BadCursor as exc:
        raise Http404(_("No such page.")) from exc
    context = {
        "page": page,
        "thread": _current_thread(request),
        "scope": scope,
        "archive_view": scope == "archived=1",
        "empty_note": _("Empty: move chats here with their menu, or drag them.")
        if folder_scope
        else "",
    }
    return render(request, "chat/sidebar.html#rows", context)


@require_GET
def chat_menu(request: HttpRequest, thread_id: int) -> HttpResponse:
    """A chat's menu (pin, rename, move to, archive or restore, delete), loaded when its "⋯"
    opens; without JavaScript, the same forms on a page of their own."""
    context = {
        "t": _thread(request, thread_id),
        "folder_choices": list(Folder.objects.filter(owner=request.user)),
        "archive_view": request.GET.get("archived") == "1",
    }
    if request.htmx:
        return render(request, "chat/sidebar.html#menu", context)
    context |= {"thread": None, **sidebar.sidebar_context(request.user)}
    return render(request, "chat/chat_menu.html", context)


@require_POST
def pin(request: HttpRequest, thread_id: int) -> HttpResponse:
    organise.set_pinned(_thread(request, thread_id), _flag(request, "pinned"))
    return _answer(request)


@require_POST
def archive(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread(request, thread_id)
    archived = _flag(request, "archived")
    organise.set_archived(thread, archived)
    if not request.htmx and not archived:
        messages.success(request, _("“%(title)s” is back in your chats.") % {"title": thread.title})
    return _answer(request)


@require_POST
def move(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread(request, thread_id)
    raw = request.POST.get("folder", "")
    organise.move(thread, _folder(request, parse_id(raw)) if raw else None)
    return _answer(request)


@require_POST
def rename(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread(request, thread_id)
    return _answer_after(request, lambda: organise.rename(thread, request.POST.get("title", "")))


@require_POST
def delete(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread(request, thread_id)
    current = _current_thread(request)
    thread.delete()  # its running answers are stopped, wherever they run (chat.signals)
    if current is not None and current.pk == thread_id:
        return HttpResponseClientRedirect(reverse("chat:home"))
    return _answer(request)


@require_POST
def create_folder(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "")
    return _answer_after(request, lambda: organise.create_folder(request.user, name))


@require_POST
def rename_folder(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder, name = _folder(request, folder_id), request.POST.get("name", "")
    return _answer_after(request, lambda: organise.rename_folder(folder, name))


@require_POST
def delete_folder(request: HttpRequest, folder_id: int) -> HttpResponse:
    organise.delete_folder(_folder(request, folder_id))
    return _answer(request)


@require_GET
def archived(request: HttpRequest) -> HttpResponse:
    """The archive: chats hidden from the sidebar, each with Restore and Delete."""
    context = {
        "thread": None,
        "archive_view": True,
        "page": sidebar.page_of(sidebar.archived_chats(request.user), grouped=False),
        "scope": "archived=1",
        **sidebar.sidebar_context(request.user),
    }
    return render(request, "chat/archived.html", context)
