"""Thin views of organisation sign-in: the OpenID Connect redirect and callback, logout that
also ends the provider's session, and what the login page offers."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import LogoutView
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET

from chat.signin import oidc
from chat.signin.backends import ACCOUNT_BACKEND
from chat.signin.identity import SignInRefused

# The default of OIDC_BUTTON_LABEL (project/settings.py), marked here so that it has a
# translation; a label staff set themselves is shown as they wrote it.
gettext_noop("Sign in with your organisation")


def login_options(request: HttpRequest) -> dict:
    """Context for the login page: the provider button, and whether the password form shows
    (local passwords, or LDAP, which uses the same form)."""
    return {
        "oidc_button_label": _(settings.OIDC_BUTTON_LABEL) if oidc.enabled() else "",
        "password_login": settings.LOCAL_LOGIN or bool(settings.LDAP_SERVER_URI),
    }


def _safe_next(request: HttpRequest, value: str) -> str:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return reverse(settings.LOGIN_REDIRECT_URL)


@login_not_required
@require_GET
def oidc_login(request: HttpRequest) -> HttpResponse:
    if not oidc.enabled():
        raise Http404(_("OpenID Connect sign-in is not configured."))
    request.session[oidc.SESSION_NEXT] = _safe_next(request, request.GET.get("next", ""))
    try:
        return oidc.start(request, request.build_absolute_uri(reverse("oidc-callback")))
    except SignInRefused as refusal:
        return _refused(request, str(refusal), status=503)


@login_not_required
@require_GET
def oidc_callback(request: HttpRequest) -> HttpResponse:
    if not oidc.enabled():
        raise Http404(_("OpenID Connect sign-in is not configured."))
    next_url = request.session.pop(oidc.SESSION_NEXT, "") or reverse(settings.LOGIN_REDIRECT_URL)
    try:
        result = oidc.finish(request)
    except SignInRefused as refusal:
        return _refused(request, str(refusal), status=403)
    login(request, result.user, backend=ACCOUNT_BACKEND)
    request.session[oidc.SESSION_ID_TOKEN] = result.id_token
    return redirect(next_url)


def _refused(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    return render(request, "registration/signin_refused.html", {"message": message}, status=status)


class SignOutView(LogoutView):
    """Django's logout; after an OpenID Connect sign-in, also the provider's (RP-initiated
    logout) when it offers an end-session endpoint, coming back to the login page."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        id_token = request.session.get(oidc.SESSION_ID_TOKEN, "")
        response = super().post(request, *args, **kwargs)
        if id_token and oidc.enabled():
            url = oidc.logout_url(id_token, request.build_absolute_uri(reverse("login")))
            if url:
                return HttpResponseRedirect(url)
        return response
