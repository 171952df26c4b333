"""Share by link: the owner's list of links (make, revoke), the read-only snapshot page and
“Continue in a new chat”."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat.markdown import render_markdown
from chat.models import ShareLink, SiteSettings, Thread
from chat.services import share_links
from chat.views.thread_access import owned_thread_or_404


def _panel(request: HttpRequest, thread: Thread, *, error: str = "") -> HttpResponse:
    context = {
        "thread": thread,
        "links": share_links.links_of(thread),
        "anonymous": SiteSettings.load().anonymous_share_links,
        "error": error,
    }
    return render(request, "chat/share_links.html#links", context)


@require_http_methods(["GET", "POST"])
def links_panel(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    if request.method == "GET":
        return _panel(request, thread)
    try:
        share_links.create_link(request.user, thread)
    except share_links.ShareLinkError as exc:
        return _panel(request, thread, error=str(exc))
    return _panel(request, thread)


@require_POST
def revoke_link(request: HttpRequest, thread_id: int, link_id: int) -> HttpResponse:
    thread = owned_thread_or_404(request, thread_id)
    if not share_links.revoke_link(request.user, thread, link_id):
        raise Http404(_("No such link."))
    return _panel(request, thread)


def _opened_link(view: Callable[[HttpRequest, ShareLink], HttpResponse]):
    """The view of a share link's ``token``: called with the link once the visitor may open it
    (else a login redirect or a 404)."""

    @wraps(view)
    def with_link(request: HttpRequest, token: str) -> HttpResponse:
        # Who may open links is checked first: an anonymous visitor learns nothing about a token.
        if not share_links.may_open(request.user):
            return redirect_to_login(request.get_full_path())
        link = share_links.link_for(token)
        if link is None:
            raise Http404(_("This link does not exist or was revoked."))
        return view(request, link)

    return with_link


@login_not_required
@require_GET
@_opened_link
def shared_page(request: HttpRequest, link: ShareLink) -> HttpResponse:
    turns = [
        {
            "turn": turn,
            "user_html": mark_safe(render_markdown(turn.user_text)),
            "answer_html": mark_safe(render_markdown(turn.output_text)),
        }
        for turn in share_links.snapshot(link)
    ]
    return render(request, "chat/share_links.html", {"link": link, "turns": turns})


@login_not_required
@require_POST
@_opened_link
def continue_copy(request: HttpRequest, link: ShareLink) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return redirect(share_links.copy_to_new_thread(request.user, link))
