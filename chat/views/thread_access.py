"""The one way views get a thread: 404 for one the user may not see (no existence leak), 403
for one they may only read (``chat.services.permissions`` decides)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _

from chat.models import Thread
from chat.services import permissions
from chat.services.refusals import ReadOnly


def thread_or_404(request: HttpRequest, thread_id: int) -> Thread:
    """A thread the user may read."""
    thread = permissions.thread_for(request.user, thread_id)
    if thread is None:
        raise Http404(_("No such chat."))
    return thread


def writable_thread_or_404(
    request: HttpRequest, thread_id: int, *, owner_only: bool = False
) -> Thread:
    """A thread the user may change (``owner_only``: that only its owner may change)."""
    try:
        thread = permissions.writable_thread_for(request.user, thread_id, owner_only=owner_only)
    except ReadOnly as exc:
        raise PermissionDenied(str(exc)) from exc
    if thread is None:
        raise Http404(_("No such chat."))
    return thread


def owned_thread_or_404(request: HttpRequest, thread_id: int) -> Thread:
    return writable_thread_or_404(request, thread_id, owner_only=True)
