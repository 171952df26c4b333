"""The thread websocket's entry: origin check, cookies, session, user and URL, then the consumer.

Channels' ``SameOriginValidator(AuthMiddlewareStack(URLRouter(…)))`` does the same in five
nested ASGI layers; each stays suspended for the socket's whole life, holding its own copy of the
scope, so an idle socket kept six scopes and a dozen coroutine frames (about 8 KB of its ~37 KB).
Here the same steps, with the same functions (``origin_allowed``, Django's ``parse_cookie``, the
session engine's ``SessionStore``, ``channels.auth.get_user``), run in one frame and build one
scope. A user already in the scope (the trusted sign-in header's middleware) is kept.
"""

from importlib import import_module

from channels.auth import get_user
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.cookie import parse_cookie
from django.urls import path

import chat.request_ids  # noqa: F401 (registers the <id:…> converter)
from chat.consumers import ThreadConsumer
from chat.site_origin import SameOriginValidator, origin_allowed

websocket_urlpatterns = [path("ws/threads/<id:thread_id>/", ThreadConsumer.as_asgi())]


def _cookies(scope: dict) -> dict[str, str]:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


def _route(scope: dict):
    """The matching pattern's consumer application and its URL kwargs, or (None, None)."""
    relative = scope.get("path", "").removeprefix("/")
    for pattern in websocket_urlpatterns:
        match = pattern.pattern.match(relative)
        if match is not None and match[0] == "":
            return pattern.callback, match[2]
    return None, None


class ThreadSocketEntry:
    """ASGI application for ``/ws/threads/<id>/``: only this site's pages, then the session user."""

    async def __call__(self, scope, receive, send):
        if not origin_allowed(scope):
            # The validator's refusal (with its log line) for the other origins.
            return await SameOriginValidator(None)(scope, receive, send)
        consumer_app, kwargs = _route(scope)
        if consumer_app is None:
            return await WebsocketDenier()(scope, receive, send)
        consumer = consumer_app.consumer_class(**consumer_app.consumer_initkwargs)
        # The session scope is built in the call's arguments, not kept in this frame, which
        # stays suspended as long as the socket is open: the consumer can let it go.
        return await consumer(await _session_scope(scope, kwargs), receive, send)


async def _session_scope(scope: dict, url_kwargs: dict) -> dict:
    """``scope`` with the cookies, the session, the route and the session's user (unless a user
    is already in it) added, as Channels' session and auth middleware add them."""
    cookies = _cookies(scope)
    store = import_module(settings.SESSION_ENGINE).SessionStore
    scope = dict(
        scope,
        cookies=cookies,
        session=store(cookies.get(settings.SESSION_COOKIE_NAME)),
        url_route={"args": (), "kwargs": url_kwargs},
    )
    if "user" not in scope:
        scope["user"] = await get_user(scope)
    return scope


websocket_application = ThreadSocketEntry()
