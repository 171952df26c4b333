"""Login with throttling: too many failures from one IP or for one username block further tries
for a while (``LOGIN_FAILURES_*`` settings), with a message saying how long."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.utils.translation import gettext as _

from chat.services import login_throttle


class ThrottledLoginMixin:
    """For any ``AuthenticationForm``: refuse while blocked, count failures, clear on success."""

    throttled = False

    def clean(self):
        ip = login_throttle.client_ip(self.request)
        username = self.data.get("username", "") or ""
        wait = login_throttle.login_blocked_for(ip, username)
        if wait:
            self.throttled = True
            raise forms.ValidationError(
                _("Too many failed logins. Try again in %(wait)s.")
                % {"wait": login_throttle.wait_words(wait)},
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            login_throttle.record_login_failure(ip, username)
            raise
        login_throttle.clear_login_failures(username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class ThrottledLoginView(LoginView):
    form_class = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "throttled", False):
            response.status_code = 429
        return response
