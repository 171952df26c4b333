"""Database ids in requests (URLs, form fields, query strings, websocket actions).

Everything a browser sends is untrusted: ``"99999999999999999999"`` overflowed SQLite's
integer (OverflowError, a 500), and ``"²"`` passed ``str.isdigit`` but not ``int``. An id is
ASCII digits only and fits the database's 64-bit integer; anything else is "no such id".
"""

from __future__ import annotations

import re

from django.urls import register_converter

# The largest BigAutoField / PostgreSQL bigint / SQLite INTEGER.
MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(value: object) -> int | None:
    """``value`` as a database id (1 … MAX_ID), or None when it cannot be one. Accepts the
    text of a form field or query string and, from JSON, an integer (not a bool or float)."""
    number = parse_count(value)
    return number if number else None


def parse_count(value: object) -> int | None:
    """``value`` as a whole number 0 … MAX_ID (e.g. how many blocks a page holds), or None."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            return None
        value = int(value)
    elif isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_ID else None


class IdConverter:
    """``<id:name>`` in URL patterns: like ``<int:…>`` but only ids the database can hold, so
    a longer number is a plain 404 before any view or query sees it."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        parsed = parse_id(value)
        if parsed is None:
            raise ValueError(value)  # Django: this URL does not match
        return parsed

    def to_url(self, value: int) -> str:
        return str(value)


# Once, when this module is first imported (chat/urls.py and chat/routing.py use ``<id:…>``).
register_converter(IdConverter, "id")
