"""The language of a websocket's fragments: the one ``LocaleMiddleware`` gives the page that
opened it (the language cookie of the user menu's switch, else the browser's Accept-Language,
else ``LANGUAGE_CODE``), so what arrives live reads like the page around it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.utils import translation


def language_of_scope(scope: dict[str, Any]) -> str:
    headers = dict(scope.get("headers", []))
    # get_language_from_request reads only these two attributes when check_path is off.
    request = SimpleNamespace(
        COOKIES=scope.get("cookies", {}),
        META={"HTTP_ACCEPT_LANGUAGE": headers.get(b"accept-language", b"").decode("latin-1")},
    )
    return translation.get_language_from_request(request)  # type: ignore[arg-type]
