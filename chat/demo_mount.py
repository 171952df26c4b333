"""The built-in demo gateway, mounted at ``/demo/`` in the app process (``project/asgi.py``).

It runs outside Django, so it gets Django's host checks here: a ``Host`` not in
``ALLOWED_HOSTS`` is refused (400) and, with ``DJANGO_SECURE``, plain HTTP is redirected to
HTTPS (301). Requests addressed to ``DEMO_GATEWAY_URL`` itself (how Switchboard calls its own
demo provider, e.g. ``http://127.0.0.1:8000``) are served as they come: the gateway needs its
key, derived from ``SECRET_KEY``, whatever the host.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from django.conf import settings

from chat.site_origin import allowed_host, parse_origin, request_scheme, scope_headers
from chat.startup import demo_gateway_key

PREFIX = "/demo/"


async def _plain_response(send, status: int, text: str, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


def _https_url(scope: dict, host: str) -> bytes:
    path = scope.get("raw_path") or quote(scope["path"]).encode()
    query = scope.get("query_string") or b""
    return (
        b"https://"
        + (settings.SECURE_SSL_HOST or host).encode("latin1")
        + path
        + (b"?" + query if query else b"")
    )


def guarded(application):
    """``application`` behind the host checks described above."""
    own_calls = parse_origin("{0.scheme}://{0.netloc}".format(urlsplit(settings.DEMO_GATEWAY_URL)))

    async def guarded_application(scope, receive, send):
        host = scope_headers(scope).get("host", "")
        if own_calls and parse_origin(f"{request_scheme(scope)}://{host}") == own_calls:
            return await application(scope, receive, send)
        if allowed_host(scope) is None:
            return await _plain_response(send, 400, "Bad Request (400): host not allowed")
        if settings.SECURE_SSL_REDIRECT and request_scheme(scope) != "https":
            location = [(b"location", _https_url(scope, host))]
            return await _plain_response(send, 301, "", location)
        return await application(scope, receive, send)

    return guarded_application


def with_demo_gateway(django_application):
    """Django's ASGI app, plus the demo gateway under ``/demo/`` when it is enabled."""
    if not settings.DEMO_GATEWAY_ENABLED:
        return django_application
    # Imported here, so that a deployment without the demo gateway never loads it.
    from demo_gateway import make_app

    demo_application = guarded(
        make_app(api_key=demo_gateway_key(), chunk_delay=settings.DEMO_CHUNK_DELAY)
    )

    async def http_application(scope, receive, send):
        if scope["path"].startswith(PREFIX):
            return await demo_application(scope, receive, send)
        return await django_application(scope, receive, send)

    return http_application
