"""Usage pages: the staff dashboard (+ CSV export) and each member's own usage and quota."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


def _require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Staff only.")


@require_GET
def my_usage(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/my_usage.html", {})


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    _require_staff(request)
    return render(request, "staff/dashboard.html", {})
