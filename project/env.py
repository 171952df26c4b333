"""Reading the environment strictly: every setting goes through one of these helpers.

A typo (``DJANGO_SECURE=ture``, ``PORT=80OO``) stops the start with the variable named instead
of silently falling back to a default. Plain standard library plus Django's exception: the
settings module uses it before Django is set up.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """The variable without surrounding blanks; ``default`` when it is unset or blank."""
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``; anything else is a typo and stops the start."""
    value = env_str(name).lower()
    if not value:
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={os.environ[name]!r}: use 1 or 0 (true/false, yes/no, on/off)."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole number; a typo (or one below ``minimum``) stops the start with the variable named."""
    value = env_str(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r}: must be at least {minimum}.")
    return number


def env_float(name: str, default: float) -> float:
    """A number such as ``0.04``; a typo stops the start with the variable named."""
    value = env_str(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated items, blanks dropped; ``default`` when none are given."""
    return [item.strip() for item in env_str(name).split(",") if item.strip()] or default


def env_secret(name: str) -> str:
    """``NAME``, or the content of the file named by ``NAME_FILE`` (a mounted secret)."""
    path = env_str(name + "_FILE")
    if not path:
        return env_str(name)
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise ImproperlyConfigured(f"{name}_FILE={path!r}: {error.strerror}.") from None
