"""The Content-Security-Policy of every response (django-csp, ``CONTENT_SECURITY_POLICY`` in the
settings), completed per request with what only the request and the site settings know: the
hosts staff allowed images from, and the websocket origin of the host the page was served on.

Nothing in the pages is inline (no ``<script>`` body, ``style=`` or ``on…=`` attribute), so the
policy needs no ``'unsafe-inline'`` and no nonce.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase

from chat import image_policy


class SiteCSPMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only or not response.get("Content-Type", "").startswith("text/html"):
            # Only a page loads images or opens sockets; /healthz must not wait for the
            # database to read the image hosts.
            return parts
        additions = {
            "img-src": image_policy.current().csp_sources,
            "connect-src": websocket_origins(request),
            "form-action": sign_in_provider_origins(),
        }
        update = dict(parts.update or {})
        for directive, sources in additions.items():
            update[directive] = [*update.get(directive, ()), *sources]
        parts.update = update
        return parts


def websocket_origins(request: HttpRequest) -> list[str]:
    """``wss://host`` (``ws://`` over plain HTTP) of the host this page was served on. Browsers
    differ on whether ``'self'`` covers websockets, so it is named."""
    try:
        host = request.get_host()
    except DisallowedHost:
        return []  # the response is the refusal; no page will open a socket
    return [f"{'wss' if request.is_secure() else 'ws'}://{host}"]


def sign_in_provider_origins() -> list[str]:
    """The OpenID provider's origin: logging out is a form POST answered with a redirect to the
    provider's end-session page, and ``form-action`` also governs where that redirect may go."""
    if not settings.OIDC_ISSUER:
        return []
    issuer = urlsplit(settings.OIDC_ISSUER)
    return [f"{issuer.scheme}://{issuer.netloc}"]
