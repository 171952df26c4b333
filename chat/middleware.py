"""First run: until an account exists, every page leads to the form that creates it (unless
``FIRST_RUN_SETUP`` is off: then ``manage.py createsuperuser`` creates the first account)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

EXEMPT_PATHS = {"/healthz", "/metrics"}
# The setup page itself loads the JavaScript catalog and offers the language switch.
LANGUAGE_PATHS = {"/jsi18n/", "/i18n/setlang/"}
API_PREFIX = "/api/"


def _first_admin_from_organisation() -> bool:
    """Admin groups of an organisation sign-in are configured: the first administrator signs
    in that way, so there is no local first-run account to create."""
    return bool(
        (settings.OIDC_ISSUER and settings.OIDC_ADMIN_GROUPS)
        or (settings.LDAP_SERVER_URI and settings.LDAP_ADMIN_GROUPS)
        or (settings.TRUSTED_USER_HEADER and settings.TRUSTED_ADMIN_GROUPS)
    )


class FirstRunMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.has_accounts = False  # once true it stays true: no query per request after that

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            not settings.FIRST_RUN_SETUP
            or request.path in EXEMPT_PATHS
            or request.path in LANGUAGE_PATHS
            or request.path.startswith(API_PREFIX)  # keys only; JSON errors, never a redirect
        ):
            return self.get_response(request)  # e.g. /healthz answers even when the DB is down
        if not self.has_accounts and not _first_admin_from_organisation():
            self.has_accounts = get_user_model().objects.exists()
            setup_url = reverse("setup")
            if (
                not self.has_accounts
                and request.path != setup_url
                and not request.path.startswith("/static/")
            ):
                return redirect(setup_url)
        return self.get_response(request)
