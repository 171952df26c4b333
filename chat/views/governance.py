"""Pages for running Switchboard as an organisation: team budgets over time and the audit log,
readable by staff and auditors (chat/services/roles.py); and the admin's "Test connection"
for a provider that is not saved yet. Thin views: the logic is in chat.services."""

from __future__ import annotations

from functools import wraps

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from chat.models import AuditLogEntry, Provider
from chat.services import budgets, providers, roles


def _requires(check, what: str):
    """A view decorator: 403 unless ``check(user)``; ``what`` names who may (translated)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied(_("This page is for %(who)s.") % {"who": what})
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


usage_viewer_required = _requires(roles.may_view_usage, gettext_lazy("staff and auditors"))
audit_viewer_required = _requires(roles.may_view_audit_log, gettext_lazy("staff and auditors"))


@require_GET
@usage_viewer_required
def team_budgets(request: HttpRequest) -> HttpResponse:
    """Each team's budgets this month and its spend month by month."""
    return render(
        request,
        "staff/team_budgets.html",
        {
            "teams": budgets.team_overview(),
            "warning_percent": settings.BUDGET_WARNING_PERCENT,
            "currency": settings.COST_CURRENCY,
        },
    )


AUDIT_PAGE_SIZE = 100


@require_GET
@audit_viewer_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit log, read only, newest first, with filters on the object type and action."""
    entries = AuditLogEntry.objects.all()
    object_type = request.GET.get("type", "")
    action = request.GET.get("action", "")
    if object_type:
        entries = entries.filter(object_type=object_type)
    if action:
        entries = entries.filter(action=action)
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "staff/audit_log.html",
        {
            "page": page,
            "types": AuditLogEntry.objects.order_by("object_type")
            .values_list("object_type", flat=True)
            .distinct(),
            "actions": AuditLogEntry.objects.order_by("action")
            .values_list("action", flat=True)
            .distinct(),
            "selected_type": object_type,
            "selected_action": action,
        },
    )


@require_POST
def test_unsaved_provider(request: HttpRequest) -> JsonResponse:
    """The admin's add form: GET /v1/models with the URL and key typed so far, nothing stored.
    Staff only (the admin wraps it in ``admin_view``, which also checks CSRF)."""
    if not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied(_("Only staff can test a provider."))
    base_url = request.POST.get("base_url", "").strip()
    if not base_url.startswith(("http://", "https://")):
        return JsonResponse({"ok": False, "message": _("Enter the base URL first (https://…/v1).")})
    provider = Provider(name=request.POST.get("name", "") or "New provider", base_url=base_url)
    provider.set_api_key(request.POST.get("api_key", ""))
    result = async_to_sync(providers.check_connection)(provider)
    return JsonResponse({"ok": result.ok, "message": result.message})
