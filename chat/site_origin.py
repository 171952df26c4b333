"""This site's own origin, worked out from an ASGI scope the way Django does for a request.

Used where Django's middleware does not run: the websocket handshake (only pages of this site
may open a socket: no cross-site websocket hijacking) and the mounted demo gateway (the same
``ALLOWED_HOSTS`` check and HTTPS redirect as every page).
"""

from __future__ import annotations

import logging
from typing import NamedTuple
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    scheme: str
    host: str  # lower case; an IPv6 address without its brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def parse_origin(text: str) -> Origin | None:
    """``https://Chat.example.org`` → ``Origin("https", "chat.example.org", 443)``; None for
    anything that is not a plain http(s) origin (``null``, a path, credentials, a bad port)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        return None
    return Origin(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])


def scope_headers(scope: dict) -> dict[str, str]:
    """Header name (lower case) → value; repeated headers joined with commas, as Django does."""
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin1").lower(), []).append(value.decode("latin1"))
    return {name: ",".join(values) for name, values in found.items()}


def request_scheme(scope: dict) -> str:
    """``http`` or ``https``: what the proxy says in ``SECURE_PROXY_SSL_HEADER`` when it sent
    that header, else the connection's own scheme (``ws`` → http, ``wss`` → https)."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").lower().replace("_", "-")
        value = scope_headers(scope).get(header)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("https", "wss") else "http"


def allowed_hosts() -> list[str]:
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]  # Django's own default in DEBUG
    return list(settings.ALLOWED_HOSTS)


def allowed_host(scope: dict, extra_hosts: tuple[str, ...] = ()) -> str | None:
    """The request's ``Host`` header when its name is in ``ALLOWED_HOSTS`` (or ``extra_hosts``);
    None when it is missing or not allowed."""
    host = scope_headers(scope).get("host", "")
    domain, _port = split_domain_port(host)
    if domain and validate_host(domain, [*allowed_hosts(), *extra_hosts]):
        return host
    return None


def own_origin(scope: dict) -> Origin | None:
    """The origin this request was made to, or None when its host is not allowed."""
    host = allowed_host(scope)
    return parse_origin(f"{request_scheme(scope)}://{host}") if host else None


def _trusted_pattern_matches(pattern: str, origin: Origin) -> bool:
    """One ``CSRF_TRUSTED_ORIGINS`` entry, e.g. ``https://chat.example.org`` or
    ``https://*.example.org`` (the domain and any subdomain, as Django's CSRF check reads it)."""
    scheme, separator, netloc = pattern.partition("://")
    if not separator or scheme.lower() != origin.scheme:
        return False
    wildcard = netloc.startswith("*.")
    trusted = parse_origin(f"{scheme}://{netloc[2:] if wildcard else netloc}")
    if trusted is None or trusted.port != origin.port:
        return False
    if wildcard:
        return is_same_domain(origin.host, "." + trusted.host)
    return trusted.host == origin.host


def origin_allowed(scope: dict) -> bool:
    """True when the handshake's ``Origin`` is this site's own origin (scheme, host and port),
    or one of ``CSRF_TRUSTED_ORIGINS``; always false when the ``Host`` is not allowed."""
    own = own_origin(scope)
    origin = parse_origin(scope_headers(scope).get("origin", ""))
    if own is None or origin is None:
        return False
    return origin == own or any(
        _trusted_pattern_matches(pattern, origin) for pattern in settings.CSRF_TRUSTED_ORIGINS
    )


class SameOriginValidator:
    """ASGI middleware for websockets: refuses a handshake from any other origin."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        headers = scope_headers(scope)
        log.warning(
            "websocket refused: origin %r, host %r over %s (allowed: this host if in "
            "DJANGO_ALLOWED_HOSTS, and DJANGO_CSRF_TRUSTED_ORIGINS)",
            headers.get("origin"),
            headers.get("host"),
            request_scheme(scope),
        )
        return await WebsocketDenier()(scope, receive, send)
