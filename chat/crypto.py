"""Encryption at rest for provider API keys (Fernet, with rotation through MultiFernet)."""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet_key(material: str) -> bytes:
    """Accept a ready Fernet key, or derive one from any passphrase (e.g. the SECRET_KEY)."""
    try:
        Fernet(material.encode())
        return material.encode()
    except ValueError:
        digest = hashlib.sha256(b"switchboard-api-keys:" + material.encode()).digest()
        return base64.urlsafe_b64encode(digest)


def _keys() -> tuple[str, ...]:
    return tuple(settings.ENCRYPTION_KEYS or [settings.SECRET_KEY])


@functools.lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


def encrypt(plaintext: str) -> str:
    return _cipher(_keys()).encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(token: str) -> str:
    """Return the plaintext, or raise ``ValueError`` when no configured key can read it."""
    if not token:
        return ""
    try:
        return _decrypted(token, _keys())
    except InvalidToken as exc:
        raise ValueError("The API key cannot be decrypted with the configured keys.") from exc


# Every turn reads its provider's key (about 0.1 ms of Fernet's HMAC and AES): the plaintext of
# the stored keys is kept, as each gateway client keeps it in its Authorization header anyway.
# Keyed by the configured keys too, so a key taken out of the settings reads nothing any more.
@functools.lru_cache(maxsize=256)
def _decrypted(token: str, keys: tuple[str, ...]) -> str:
    return _cipher(keys).decrypt(token.encode()).decode()


def mask(plaintext: str) -> str:
    """``sk-…abcd``: enough to recognise a key, never enough to use it."""
    if not plaintext:
        return ""
    prefix = plaintext[:3] if len(plaintext) > 10 else ""
    return f"{prefix}…{plaintext[-4:]}"
