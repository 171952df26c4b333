"""Who may get in: login throttling (failures per IP and per username) and sign-up domains.

Failures are counted in Django's cache, so several server processes share the counts when the
cache is shared (e.g. Redis); with the default in-process cache each process counts its own.
"""

from __future__ import annotations

import hashlib
import math
import re
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or the last address in ``LOGIN_CLIENT_IP_HEADER``
    (the one the reverse proxy in front of Switchboard added) when that is configured."""
    header = settings.LOGIN_CLIENT_IP_HEADER
    if header:
        forwarded = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        addresses = [part.strip() for part in forwarded.split(",") if part.strip()]
        if addresses:
            return addresses[-1]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(kind: str, value: str) -> tuple[str, str]:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"login-failures:{kind}:{digest}", f"login-failures:{kind}:{digest}:until"


def _limits() -> list[tuple[str, int]]:
    return [
        ("ip", settings.LOGIN_FAILURES_PER_IP),
        ("user", settings.LOGIN_FAILURES_PER_USERNAME),
    ]


def login_blocked_for(ip: str, username: str) -> int:
    """Seconds until this IP or username may try again; 0 when not blocked."""
    now = time.time()
    wait = 0.0
    for (kind, limit), value in zip(_limits(), (ip, username), strict=True):
        if not limit or not value:
            continue
        count_key, until_key = _keys(kind, value)
        if (cache.get(count_key) or 0) >= limit:
            wait = max(wait, (cache.get(until_key) or now) - now)
    return math.ceil(wait) if wait > 0 else 0


def record_login_failure(ip: str, username: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for (kind, limit), value in zip(_limits(), (ip, username), strict=True):
        if not limit or not value:
            continue
        count_key, until_key = _keys(kind, value)
        cache.add(until_key, time.time() + window, window)
        cache.add(count_key, 0, window)
        try:
            cache.incr(count_key)
        except ValueError:  # expired between add and incr
            cache.set(count_key, 1, window)


def clear_login_failures(username: str) -> None:
    """A successful login forgets the username's failures (the IP's count stays)."""
    cache.delete_many(_keys("user", username))


def wait_words(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# -- sign-up ------------------------------------------------------------------------------------


def parse_domains(text: str) -> list[str]:
    """``"example.com, Example.org\\n"`` → ``["example.com", "example.org"]``."""
    return [part.lstrip("@").lower() for part in re.split(r"[\s,;]+", text or "") if part]


def email_domain_allowed(email: str, domains: list[str]) -> bool:
    """True when no domains are configured, or the address is at one of them exactly."""
    if not domains:
        return True
    _, at, domain = (email or "").rpartition("@")
    return bool(at) and domain.lower() in domains
