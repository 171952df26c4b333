"""Who is calling: a ``Bearer`` personal key → :class:`Caller`, or an :class:`ApiError` (401/403).

Wrong keys are counted per client IP in Django's cache (the login throttle's style): after
``API_KEY_FAILURES_PER_IP`` failures in ``API_KEY_FAILURE_WINDOW_SECONDS`` that IP gets 429 until
the window ends, before any key is looked up, so keys cannot be guessed at speed.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from chat.api.errors import ApiError
from chat.api.keys import MAX_KEY_CHARS, hash_key
from chat.models import ApiAccess, ApiKey, SiteSettings
from chat.services.login_throttle import count_failure, seconds_blocked

LAST_USED_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    is_staff: bool
    key_id: int
    allowed_models: tuple[str, ...]

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


def _failure_keys(ip: str) -> tuple[str, str]:
    return f"api-key-failures:{ip}", f"api-key-failures:{ip}:until"


def blocked_for(ip: str) -> int:
    """Seconds this IP must wait before trying a key again (0: it may try now)."""
    limit = settings.API_KEY_FAILURES_PER_IP
    wait = seconds_blocked(*_failure_keys(ip), limit=limit, now=time.time()) if limit else 0
    return math.ceil(wait) if wait > 0 else 0


def _count_failure(ip: str) -> None:
    count_failure(*_failure_keys(ip), window=settings.API_KEY_FAILURE_WINDOW_SECONDS)


def bearer_token(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(authorization: str, ip: str) -> Caller:
    """The caller named by the ``Authorization`` header (sync: one indexed query, two small ones
    for the switches). Raises :class:`ApiError`."""
    wait = blocked_for(ip)
    if wait:
        raise ApiError(
            429,
            "Too many requests with invalid API keys. Try again later.",
            code="too_many_invalid_keys",
            retry_after=wait,
        )
    token = bearer_token(authorization)
    if not token or len(token) > MAX_KEY_CHARS:
        _count_failure(ip)
        raise ApiError(
            401,
            "Missing or malformed API key: send `Authorization: Bearer <key>`.",
            code="invalid_api_key",
        )
    digest = hash_key(token)
    # One query: the key, its user and both API switches (site-wide and the user's own).
    key = (
        ApiKey.objects.select_related("user")
        .annotate(
            site_api_on=Subquery(SiteSettings.objects.filter(pk=1).values("api_enabled")[:1]),
            user_api_on=Subquery(
                ApiAccess.objects.filter(user_id=OuterRef("user_id")).values("enabled")[:1]
            ),
        )
        .filter(key_hash=digest)
        .first()
    )
    # The lookup is by hash (nothing secret-dependent); compare again in constant time anyway.
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        _count_failure(ip)
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
    now = timezone.now()
    if key.revoked_at is not None:
        raise ApiError(401, "This API key has been revoked.", code="invalid_api_key")
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiError(401, "This API key has expired.", code="invalid_api_key")
    user = key.user
    if not user.is_active:
        raise ApiError(401, "The account of this API key is disabled.", code="invalid_api_key")
    _check_switches(key.site_api_on, key.user_api_on)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_EVERY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return Caller(user.pk, user.get_username(), user.is_staff, key.pk, tuple(key.allowed_models))


def _check_switches(site_on: bool | None, user_on: bool | None) -> None:
    """403 when staff turned the API off, for everyone (site settings) or for this user
    (None: no row, so on)."""
    if site_on is False:
        raise ApiError(403, "The API is turned off on this server.", code="api_disabled")
    if user_on is False:
        raise ApiError(403, "The API is turned off for your account.", code="api_disabled")


def check_api_enabled(user_id: int) -> None:
    site = SiteSettings.objects.filter(pk=1).values_list("api_enabled", flat=True).first()
    own = ApiAccess.objects.filter(user_id=user_id).values_list("enabled", flat=True).first()
    _check_switches(site, own)


def still_valid(key_id: int, user_id: int) -> bool:
    """Re-checked while a stream runs: the key is not revoked or expired and the API is on."""
    now = timezone.now()
    key = ApiKey.objects.filter(pk=key_id).values("revoked_at", "expires_at").first()
    if key is None or key["revoked_at"] is not None:
        return False
    if key["expires_at"] is not None and key["expires_at"] <= now:
        return False
    try:
        check_api_enabled(user_id)
    except ApiError:
        return False
    return True
