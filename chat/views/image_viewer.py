"""The page a "Load image from <host>" link opens: one remote image, in its own document.

The chat pages' Content-Security-Policy lets images load only from our origin and the hosts
staff allowed, so an image the reader chose to load cannot be put into them. This page is
framed in place of the link (``app.js``); its own policy allows exactly that image's origin
and nothing else (no script, no other request), and it sends no referrer.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from chat.image_policy import remote_image

_MAX_URL_CHARS = 8192


@require_GET
@xframe_options_sameorigin
def remote_image_page(request: HttpRequest) -> HttpResponse:
    src = request.GET.get("src", "")
    image = remote_image(src) if len(src) <= _MAX_URL_CHARS else None
    if image is None:
        return HttpResponseBadRequest(_("Not an http(s) image address."), content_type="text/plain")
    response = render(
        request,
        "chat/remote_image.html",
        {"image": image, "alt": request.GET.get("alt", "")[:500]},
    )
    # Set here, so the site-wide policy (chat.csp) leaves it as it is.
    response["Content-Security-Policy"] = (
        f"default-src 'none'; img-src {image.origin}; style-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )
    response["Referrer-Policy"] = "no-referrer"
    return response
