"""Usage pages: the staff dashboard (+ CSV export) and each member's own usage and quota.

Views are thin: a filter form in, :mod:`chat.services.usage` aggregates out."""

from __future__ import annotations

import datetime as dt
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from chat.models import Provider, Turn, UsageRecord
from chat.services import budgets, feedback, quotas, usage
from chat.upstream.request import Api
from chat.views.governance import usage_viewer_required

MAX_RANGE_DAYS = 3 * 366


def staff_required(view):
    """Members get 403 (anonymous visitors are sent to log in by LoginRequiredMiddleware)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied(_("This page is for staff."))
        return view(request, *args, **kwargs)

    return wrapper


class UsageFilterForm(forms.Form):
    start = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    granularity = forms.ChoiceField(
        label=_("Group by"),
        choices=[("day", _("Day")), ("week", _("Week")), ("month", _("Month"))],
        initial="day",
    )
    user = forms.TypedChoiceField(label=_("User"), required=False, coerce=int, empty_value=None)
    provider = forms.TypedChoiceField(
        label=_("Provider"), required=False, coerce=int, empty_value=None
    )
    model = forms.ChoiceField(label=_("Model"), required=False)
    api = forms.ChoiceField(
        label=_("API"), required=False, choices=[("", _("Any")), *Api.choices()]
    )
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any")), *Turn.Status.choices]
    )

    def __init__(self, data, *args, **kwargs) -> None:
        defaults = usage.UsageFilters.default()
        data = {
            "start": defaults.start.isoformat(),
            "end": defaults.end.isoformat(),
            "granularity": "day",
            **{key: value for key, value in data.items() if value},
        }
        super().__init__(data, *args, **kwargs)
        users = get_user_model().objects.order_by("username").values_list("pk", "username")
        self.fields["user"].choices = [("", _("Everyone")), *users]
        self.fields["provider"].choices = [
            ("", _("Any")),
            *Provider.objects.order_by("name").values_list("pk", "name"),
        ]
        models = UsageRecord.objects.order_by("model").values_list("model", flat=True).distinct()
        self.fields["model"].choices = [("", _("Any")), *((m, m) for m in models if m)]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if start > end:
                raise forms.ValidationError(_("“From” must be on or before “To”."))
            if (end - start).days > MAX_RANGE_DAYS:
                raise forms.ValidationError(_("Pick a range of at most three years."))
        return cleaned

    def filters(self) -> usage.UsageFilters:
        if not self.is_valid():
            return usage.UsageFilters.default()
        data = self.cleaned_data
        return usage.UsageFilters(
            start=data["start"],
            end=data["end"],
            granularity=data["granularity"],
            user_id=data["user"],
            provider_id=data["provider"],
            model=data["model"],
            api=data["api"],
            status=data["status"],
        )


@require_GET
@usage_viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    form = UsageFilterForm(request.GET)
    filters = form.filters()
    report = usage.report(filters)
    return render(
        request,
        "staff/dashboard.html",
        {
            "form": form,
            "filters": filters,
            "report": report,
            "chart_data": report.chart_data(),
            "currency": settings.COST_CURRENCY,
            "query": request.GET.urlencode(),
            "budget_warnings": budgets.warned_lines(),
            **feedback.dashboard(request.user),  # 👍/👎 per model, the latest with links
        },
    )


@require_GET
@usage_viewer_required
def usage_csv(request: HttpRequest) -> StreamingHttpResponse:
    filters = UsageFilterForm(request.GET).filters()
    response = StreamingHttpResponse(usage.csv_lines(filters), content_type="text/csv")
    name = f"usage-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
def my_usage(request: HttpRequest) -> HttpResponse:
    """A user's own usage: what is left of each quota, and the last 30 days by day and model."""
    limits, lines = quotas.quota_lines(request.user)
    today = timezone.localdate()
    filters = usage.UsageFilters(
        start=today - dt.timedelta(days=29), end=today, user_id=request.user.pk
    )
    records = usage.filtered(filters)
    series = usage.time_series(records, filters)
    return render(
        request,
        "staff/my_usage.html",
        {
            "limits": limits,
            "lines": lines,
            "series": [row for row in reversed(series) if row["requests"]],
            "models": usage.by_model(records),
            "totals": usage.totals(records),
            "currency": settings.COST_CURRENCY,
        },
    )
