"""The account backend: local passwords, and the session of every signed-in account whatever
the method (inactive accounts are refused, as Django's own).

``LOCAL_LOGIN=0`` refuses local passwords of members. Staff accounts with a password (the
first-run administrator) still log in, at ``/admin/login/``: an install whose provider is down
or misconfigured must not lock its administrators out. Staff close that too by removing the
password (``usable_password`` off in the admin)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

ACCOUNT_BACKEND = "chat.signin.backends.AccountBackend"


class AccountBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and not settings.LOCAL_LOGIN and not user.is_staff:
            return None
        return user
