"""``/api/`` served by a Django ASGI handler of its own, with only async middleware.

The site's middleware chain has sync-only members (WhiteNoise, the first-run redirect, the proxy
sign-in header…), so every request through it hops to a worker thread and back: the largest part
of what the API added to time to first byte in ``bench/peers.py``. The API needs none of them
(no session, CSRF, login or pages: Bearer keys only), so its requests get Django's
``SecurityMiddleware`` (headers, HTTPS redirect) and the host check, all on the event loop.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.middleware.security import SecurityMiddleware

API_PREFIX = "/api/"


class ApiHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        view = convert_exception_to_response(self._get_response_async)
        self._middleware_chain = convert_exception_to_response(SecurityMiddleware(view))


def with_api(app: Any) -> Any:
    """An ASGI app sending ``/api/…`` HTTP requests to :class:`ApiHandler`, the rest to ``app``."""
    api = ApiHandler()

    async def router(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(API_PREFIX):
            await api(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router
