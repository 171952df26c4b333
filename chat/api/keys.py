"""Personal API keys: made from 32 random bytes, shown once, stored as their SHA-256 only.

A key is ``sb-`` and 43 URL-safe characters; its first ``PREFIX_CHARS`` characters are kept so
people can tell their keys apart. The hash of a key with that much entropy cannot be reversed or
guessed, so a plain SHA-256 (no slow KDF) is enough, and lookups stay one indexed query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from chat.models import ApiKey
from chat.services import audit

KEY_PREFIX = "sb-"
PREFIX_CHARS = 10
MAX_KEY_CHARS = 200  # anything longer is not one of ours; not hashed


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "replace")).hexdigest()


def new_plaintext() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(
    user,
    name: str,
    *,
    expires_days: int | None = None,
    allowed_models: Iterable[str] = (),
    actor=None,
) -> tuple[ApiKey, str]:
    """A new key for ``user``: (the stored row, the plaintext to show once)."""
    name = name.strip()[:100] or "API key"
    if expires_days is not None and expires_days < 1:
        raise ValueError("A key must be valid for at least one day.")
    plaintext = new_plaintext()
    expires_at = timezone.now() + dt.timedelta(days=expires_days) if expires_days else None
    with transaction.atomic():
        key = ApiKey.objects.create(
            user=user,
            name=name,
            prefix=plaintext[:PREFIX_CHARS],
            key_hash=hash_key(plaintext),
            allowed_models=sorted({m.strip() for m in allowed_models if m.strip()}),
            expires_at=expires_at,
        )
        audit.record(actor or user, key, "created")
    return key, plaintext


def revoke(key: ApiKey, actor) -> bool:
    """Revoke ``key`` now (its running streams stop at their next check). False: it already was."""
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if changed:
            audit.record(actor, key, "revoked")
    return bool(changed)


def parse_models(text: str) -> list[str]:
    """Model ids from a form field: one per line or comma-separated."""
    return sorted({part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()})


def status_of(key: ApiKey, now: dt.datetime | None = None) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= (now or timezone.now()):
        return "expired"
    return "active"
