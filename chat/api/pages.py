"""The user's "API keys" page: create (the key is shown once), list, revoke."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from chat.api import keys
from chat.models import ApiKey

MAX_EXPIRY_DAYS = 3650


def _context(request: HttpRequest, **extra) -> dict:
    now = timezone.now()
    rows = [(key, keys.status_of(key, now)) for key in ApiKey.objects.filter(user=request.user)]
    base = request.build_absolute_uri("/api/v1")
    return {"rows": rows, "base_url": base, "values": {}, "errors": {}} | extra


def _expiry(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_EXPIRY_DAYS:
        raise ValueError(f"Enter a number of days from 1 to {MAX_EXPIRY_DAYS}, or leave it empty.")
    return int(text)


@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "chat/api_keys.html", _context(request))
    values = {name: request.POST.get(name, "") for name in ("name", "expires_days", "models")}
    errors = {}
    if not values["name"].strip():
        errors["name"] = "Give the key a name, e.g. the script or tool that will use it."
    try:
        days = _expiry(values["expires_days"])
    except ValueError as exc:
        errors["expires_days"] = str(exc)
    if errors:
        context = _context(request, values=values, errors=errors)
        return render(request, "chat/api_keys.html", context, status=400)
    key, plaintext = keys.create_key(
        request.user,
        values["name"],
        expires_days=days,
        allowed_models=keys.parse_models(values["models"]),
    )
    # Shown in this response only: never stored, never put in a session or a redirect.
    response = render(
        request, "chat/api_keys.html", _context(request, new_key=plaintext, new_row=key)
    )
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def revoke_api_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id)
    if key.user_id != request.user.pk:
        raise Http404  # another user's key id says nothing
    keys.revoke(key, request.user)  # again on a revoked key: nothing changes
    notice = f"The key “{key.name}” is revoked: it no longer works, running streams stop."
    return render(request, "chat/api_keys.html", _context(request, notice=notice))
