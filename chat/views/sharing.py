"""The owner's sharing panel: share a thread with a team or a user, change or revoke it."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from chat.models import Access, Thread
from chat.request_ids import parse_id
from chat.services import sharing
from chat.views.thread_access import owned_thread_or_404


def _panel(
    request: HttpRequest, thread: Thread, *, error: str = "", notice: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "thread": thread,
        "shares": sharing.shares_of(thread),
        "teams": sharing.teams_for(request.user),
        "accesses": Access.choices,
        "error": error,
        "notice": notice,
        "form": request.POST if error else {},
    }
    return render(request, "chat/sharing.html#panel", context, status=status)


@require_http_methods(["GET", "POST"])
def sharing_panel(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    if request.method == "GET":
        return _panel(request, thread)
    target = request.POST.get("team", "")
    try:
        team_id = parse_id(target)
        if target and team_id is None:
            raise sharing.ShareRefused(_("You can only share with a team you belong to."))
        share = sharing.share(
            thread,
            access=request.POST.get("access", ""),
            team_id=team_id,
            username=request.POST.get("username", "") if not target else "",
        )
    except sharing.ShareRefused as exc:
        return _panel(request, thread, error=str(exc), status=422)
    return _panel(
        request, thread, notice=_("Shared with %(whom)s.") % {"whom": share.team or share.user}
    )


@require_POST
def change_share(request: HttpRequest, thread_id: int, share_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    try:
        if not sharing.change_access(thread, share_id, request.POST.get("access", "")):
            raise Http404(_("No such share."))
    except sharing.ShareRefused as exc:
        return _panel(request, thread, error=str(exc), status=422)
    return _panel(request, thread, notice=_("Access changed."))


@require_POST
def revoke_share(request: HttpRequest, thread_id: int, share_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    if not sharing.revoke(thread, share_id):
        raise Http404(_("No such share."))
    return _panel(request, thread, notice=_("No longer shared; their open pages were closed."))
