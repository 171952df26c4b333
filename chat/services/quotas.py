"""Who may send now: per-model switches, the per-user rate limit and token/cost quotas.

Everything here is a plain function of the database (and the clock), so it is tested without
sockets. :func:`check` runs inside the transaction that creates a turn, before any upstream call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from chat.models import ModelSetting, SiteSettings, Turn, UsageRecord, UserQuota
from chat.services.conversation import TurnRejected

RATE_WINDOW = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one user; ``None`` means no limit."""

    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    cost_per_month: Decimal | None = None
    requests_per_minute: int | None = None
    exempt: bool = False


@dataclass(frozen=True)
class Spent:
    tokens_today: int = 0
    tokens_this_month: int = 0
    cost_this_month: Decimal = Decimal(0)


@dataclass(frozen=True)
class QuotaLine:
    """One quota as a user sees it on their usage page."""

    name: str
    limit: int | Decimal | None
    used: int | Decimal
    resets: dt.datetime
    is_cost: bool = False

    @property
    def remaining(self) -> int | Decimal | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def percent(self) -> int:
        if not self.limit:
            return 100 if self.limit == 0 else 0
        return min(round(self.used * 100 / self.limit), 100)


_OWN_FIELDS = ("tokens_per_day", "tokens_per_month", "cost_per_month", "requests_per_minute")
_SITE_FIELDS = (
    "default_tokens_per_day",
    "default_tokens_per_month",
    "default_cost_per_month",
    "staff_exempt",
)


def _situation(user, provider=None, model: str = "", since: dt.datetime | None = None) -> dict:
    """In one query: the user's own quota, the site's defaults, the model's switch and the
    number of turns the user started since ``since``. Runs before every turn, so it is lean."""
    own = UserQuota.objects.filter(user=OuterRef("pk"))
    site = SiteSettings.objects.filter(pk=1)
    fields = {f"own_{name}": Subquery(own.values(name)[:1]) for name in (*_OWN_FIELDS, "exempt")}
    fields |= {name: Subquery(site.values(name)[:1]) for name in _SITE_FIELDS}
    if provider is not None:
        setting = ModelSetting.objects.filter(provider=provider, model=model)
        fields["model_enabled"] = Subquery(setting.values("enabled")[:1])
    if since is not None:
        recent = (
            Turn.objects.filter(author=OuterRef("pk"), created_at__gt=since)
            .order_by()
            .values("author")
            .annotate(count=Count("pk"))
            .values("count")
        )
        fields["recent_turns"] = Subquery(recent[:1])
    users = get_user_model().objects.filter(pk=user.pk)
    return users.annotate(**fields).values("is_staff", *fields).get()


def _limits(row: dict) -> Limits:
    def pick(name: str, default):
        value = row[f"own_{name}"]
        return default if value is None else value

    rate = pick("requests_per_minute", settings.RATE_LIMIT_PER_MINUTE)
    return Limits(
        tokens_per_day=pick("tokens_per_day", row["default_tokens_per_day"]),
        tokens_per_month=pick("tokens_per_month", row["default_tokens_per_month"]),
        cost_per_month=pick("cost_per_month", row["default_cost_per_month"]),
        requests_per_minute=rate or None,  # 0: no rate limit
        exempt=bool(row["own_exempt"]) or (row["is_staff"] and bool(row["staff_exempt"])),
    )


def limits_for(user) -> Limits:
    return _limits(_situation(user))


def period_starts(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """Start of today and of this month, in the site's time zone (``TIME_ZONE``)."""
    local = timezone.localtime(now or timezone.now())
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def next_resets(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    day, month = period_starts(now)
    tomorrow = timezone.localtime(day + dt.timedelta(days=1, hours=1)).replace(hour=0)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    return tomorrow, timezone.localtime(next_month).replace(hour=0)


def spent(user, now: dt.datetime | None = None) -> Spent:
    """Tokens today and this month, and this month's estimated cost (one indexed query)."""
    day, month = period_starts(now)
    totals = UsageRecord.objects.filter(user=user, created_at__gte=month).aggregate(
        month_tokens=Sum("total_tokens"),
        month_cost=Sum("cost"),
        day_tokens=Sum("total_tokens", filter=Q(created_at__gte=day)),
    )
    return Spent(
        tokens_today=totals["day_tokens"] or 0,
        tokens_this_month=totals["month_tokens"] or 0,
        cost_this_month=totals["month_cost"] or Decimal(0),
    )


def money(amount: Decimal) -> str:
    return f"{settings.COST_CURRENCY}{amount:,.2f}"


def _when(moment: dt.datetime) -> str:
    local = timezone.localtime(moment)
    return f"{local:%d %B %Y} at {local:%H:%M} {local.tzname()}"


def check(user, provider, model: str, now: dt.datetime | None = None) -> None:
    """Raise :class:`TurnRejected` with a message fit for the chat when ``user`` may not send."""
    now = now or timezone.now()
    row = _situation(user, provider, model, since=now - RATE_WINDOW)
    if row["model_enabled"] is False:
        raise TurnRejected(
            f"The model “{model}” has been turned off by an administrator. Pick another model."
        )
    limits = _limits(row)
    if limits.exempt:
        return
    rate = limits.requests_per_minute
    if rate and (row["recent_turns"] or 0) >= rate:
        oldest = (
            Turn.objects.filter(author=user, created_at__gt=now - RATE_WINDOW)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[rate - 1]
        )
        wait = max(1, int((oldest + RATE_WINDOW - now).total_seconds()) + 1)
        raise TurnRejected(
            f"You are sending messages too quickly: the limit is {rate} a minute. "
            f"Try again in {wait} seconds."
        )
    if (limits.tokens_per_day, limits.tokens_per_month, limits.cost_per_month) == (None,) * 3:
        return
    used = spent(user, now)
    tomorrow, next_month = next_resets(now)
    if limits.tokens_per_day is not None and used.tokens_today >= limits.tokens_per_day:
        raise TurnRejected(
            f"You have used your daily quota of {limits.tokens_per_day:,} tokens "
            f"({used.tokens_today:,} used today). It resets on {_when(tomorrow)}."
        )
    if limits.tokens_per_month is not None and used.tokens_this_month >= limits.tokens_per_month:
        raise TurnRejected(
            f"You have used your monthly quota of {limits.tokens_per_month:,} tokens "
            f"({used.tokens_this_month:,} used this month). It resets on {_when(next_month)}."
        )
    if limits.cost_per_month is not None and used.cost_this_month >= limits.cost_per_month:
        raise TurnRejected(
            f"You have reached your monthly budget of {money(limits.cost_per_month)} "
            f"({money(used.cost_this_month)} spent this month). It resets on {_when(next_month)}."
        )


def quota_lines(user, now: dt.datetime | None = None) -> tuple[Limits, list[QuotaLine]]:
    """The user's limits and what is left of each, for their usage page."""
    limits = limits_for(user)
    used = spent(user, now)
    tomorrow, next_month = next_resets(now)
    lines = [
        QuotaLine("Tokens today", limits.tokens_per_day, used.tokens_today, tomorrow),
        QuotaLine("Tokens this month", limits.tokens_per_month, used.tokens_this_month, next_month),
        QuotaLine("Cost this month", limits.cost_per_month, used.cost_this_month, next_month, True),
    ]
    return limits, lines
