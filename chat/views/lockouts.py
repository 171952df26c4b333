"""The admin's "Login lockouts" page: usernames and IPs refused for too many failed logins,
with a Clear button each (``chat.services.login_throttle`` keeps the list)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _

from chat.services import login_throttle


def _lockouts(request: HttpRequest) -> HttpResponse:
    # Clearing a lockout lets someone guess passwords again: those who manage users only.
    if not request.user.has_perm("auth.change_user"):
        raise PermissionDenied(_("Only staff who manage users can see and clear lockouts."))
    if request.method == "POST":
        cleared = login_throttle.clear_lockout(request.user, request.POST.get("lockout", ""))
        if cleared:
            messages.success(
                request,
                _("Cleared: %(who)s may try to log in again.") % {"who": cleared.label},
            )
        else:
            messages.warning(request, _("That lockout had already ended."))
        return HttpResponseRedirect(request.path)
    context = {
        **admin.site.each_context(request),
        "title": _("Login lockouts"),
        "lockouts": login_throttle.current_lockouts(),
        "per_username": settings.LOGIN_FAILURES_PER_USERNAME,
        "per_ip": settings.LOGIN_FAILURES_PER_IP,
        "window_minutes": settings.LOGIN_FAILURE_WINDOW_SECONDS // 60,
    }
    response = render(request, "staff/lockouts.html", context)
    response["Cache-Control"] = "no-store"
    return response


# Staff only (the admin's own login and permission check), with the admin's CSRF protection.
lockouts = admin.site.admin_view(_lockouts)
