"""The account backend: local passwords (unless ``LOCAL_LOGIN=0``), and the session of every
signed-in account whatever the method (inactive accounts are refused, as Django's own)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

ACCOUNT_BACKEND = "chat.signin.backends.AccountBackend"


class AccountBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.LOCAL_LOGIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
