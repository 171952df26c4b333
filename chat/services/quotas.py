"""Who may send now: per-model switches, the per-user rate limit and token/cost quotas.

Everything here is a plain function of the database (and the clock), so it is tested without
sockets. :func:`check` runs inside the transaction that creates a turn, before any upstream call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, Q, QuerySet, Sum
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat.models import ModelSetting, SiteSettings, Turn, UsageRecord
from chat.prepared_reads import PreparedRead
from chat.services import budgets, model_access
from chat.services.refusals import TurnRejected

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


_OWN = {f"own_{name}": F(f"quota__{name}") for name in (*_OWN_FIELDS, "exempt", "unlimited_rate")}

# Before every turn: each compiled once (chat.prepared_reads).
_USER_ROW = PreparedRead(
    lambda user_id: (
        get_user_model().objects.filter(pk=user_id).values_list("is_staff", *_OWN.values())
    ),
    int,
)
_SITE_ROW = PreparedRead(
    lambda: SiteSettings.objects.filter(pk=1).order_by().values_list(*_SITE_FIELDS)
)
_MODEL_ROW = PreparedRead(
    lambda provider_id, model: (
        ModelSetting.objects.filter(provider_id=provider_id, model=model)
        .order_by()
        .values_list("enabled", "default_params")
    ),
    int,
    str,
)


def _situation(user, provider=None, model: str = "") -> dict:
    """The user's own quota, the site's defaults and (with ``provider``) the model's settings.

    Runs before every turn, so it is a few plain indexed reads: one correlated subquery per
    field looked cheap but cost ~2 ms per turn in Django's SQL compiler alone."""
    user_row = _USER_ROW.first_row(user.pk)
    if user_row is None:
        raise get_user_model().DoesNotExist(user.pk)
    row = dict(zip(("is_staff", *_OWN), user_row, strict=True))
    site_row = _SITE_ROW.first_row() or (None,) * len(_SITE_FIELDS)
    row.update(zip(_SITE_FIELDS, site_row, strict=True))
    if provider is not None:
        setting = _MODEL_ROW.first_row(provider.pk, model)
        row["model_enabled"] = setting[0] if setting else None
        row["model_defaults"] = dict(setting[1] or {}) if setting else {}
    return row


def _limits(row: dict) -> Limits:
    def pick(name: str, default):
        value = row[f"own_{name}"]
        return default if value is None else value

    if row.get("own_unlimited_rate"):
        rate = None
    elif row["own_requests_per_minute"] is not None:
        rate = row["own_requests_per_minute"]  # 0: no messages at all
    else:
        rate = settings.RATE_LIMIT_PER_MINUTE or None  # the server's 0: no limit
    return Limits(
        tokens_per_day=pick("tokens_per_day", row["default_tokens_per_day"]),
        tokens_per_month=pick("tokens_per_month", row["default_tokens_per_month"]),
        cost_per_month=pick("cost_per_month", row["default_cost_per_month"]),
        requests_per_minute=rate,
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


def money(amount: Decimal, places: int = 2) -> str:
    """``amount`` in the site's currency (``COST_CURRENCY``), rounded to ``places``, with the
    active language's separators (the refusals' limits and the cost under each answer)."""
    rounded = Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    number = formats.number_format(rounded, places, use_l10n=True, force_grouping=True)
    # Translators: an amount of money; currency is the site's symbol (e.g. $), amount the number.
    return _("%(currency)s%(amount)s") % {"currency": settings.COST_CURRENCY, "amount": number}


def _when(moment: dt.datetime) -> str:
    local = timezone.localtime(moment)
    # Translators: when a quota resets, e.g. "01 January 2027 at 00:00 UTC".
    return _("%(date)s at %(time)s %(zone)s") % {
        "date": formats.date_format(local, "d F Y"),
        "time": f"{local:%H:%M}",
        "zone": local.tzname(),
    }


def tokens(count: int) -> str:
    return ngettext("%(count)s token", "%(count)s tokens", count) % {"count": f"{count:,}"}


def used_up(
    name: str, limit: int | Decimal, limit_text: str, used_text: str, resets: dt.datetime
) -> str:
    """A refusal that reads well for a limit of zero as for any other limit."""
    values = {"name": name, "limit": limit_text, "used": used_text, "resets": _when(resets)}
    if not limit:
        return (
            _("Your %(name)s is %(limit)s, so you cannot send messages. Ask an administrator.")
            % values
        )
    return _(
        "You have used all %(limit)s of your %(name)s (%(used)s). It resets on %(resets)s."
    ) % (values)


def check(user, provider, model: str, now: dt.datetime | None = None) -> dict:
    """Raise :class:`TurnRejected` with a message fit for the chat when ``user`` may not send.

    Returns the parameters staff set for the model (``providers.model_defaults``), read with
    its on/off switch, so the caller creating the turn need not read them again."""
    now = now or timezone.now()
    row = _situation(user, provider, model)
    if row["model_enabled"] is False:
        raise TurnRejected(
            _("The model “%(model)s” has been turned off by an administrator. Pick another model.")
            % {"model": model}
        )
    if not model_access.may_use_model(user, provider, model):
        raise TurnRejected(model_access.refusal(model))
    budgets.check(user, now)
    limits = _limits(row)
    if not limits.exempt:
        _check_rate(user, limits.requests_per_minute, now)
        _check_spending(user, limits, now)
    return row["model_defaults"]


def _check_rate(user, rate: int | None, now: dt.datetime) -> None:
    """Refuse when the user has sent ``rate`` messages in the last minute (``None``: no limit)."""
    if rate == 0:
        raise TurnRejected(
            _(
                "Your rate limit is 0 messages a minute, so you cannot send messages. "
                "Ask an administrator."
            )
        )
    if not rate:
        return
    recent = _request_times(user.pk, now - RATE_WINDOW)
    if len(recent) >= rate:
        oldest = recent[rate - 1]
        wait = max(1, int((oldest + RATE_WINDOW - now).total_seconds()) + 1)
        raise TurnRejected(
            _(
                "You are sending messages too quickly: the limit is %(rate)d a minute. "
                "Try again in %(wait)d seconds."
            )
            % {"rate": rate, "wait": wait}
        )


def _check_spending(user, limits: Limits, now: dt.datetime) -> None:
    """Refuse when a token quota or the cost budget of the period is used up."""
    if (limits.tokens_per_day, limits.tokens_per_month, limits.cost_per_month) == (None,) * 3:
        return
    used = spent(user, now)
    tomorrow, next_month = next_resets(now)
    periods = [
        (
            _("daily quota"),
            limits.tokens_per_day,
            used.tokens_today,
            tokens,
            _("used today"),
            tomorrow,
        ),
        (
            _("monthly quota"),
            limits.tokens_per_month,
            used.tokens_this_month,
            tokens,
            _("used this month"),
            next_month,
        ),
        (
            _("monthly budget"),
            limits.cost_per_month,
            used.cost_this_month,
            money,
            _("spent this month"),
            next_month,
        ),
    ]
    for name, limit, amount, show, how, resets in periods:
        if limit is not None and amount >= limit:
            used_text = _("%(amount)s %(how)s") % {"amount": show(amount), "how": how}
            raise TurnRejected(used_up(name, limit, show(limit), used_text, resets))


def _requests_since(user_id: int, since: dt.datetime) -> QuerySet:
    turns = Turn.objects.filter(author_id=user_id, created_at__gt=since).order_by()
    calls = UsageRecord.objects.filter(user_id=user_id, source="api", created_at__gt=since)
    return turns.values_list("created_at").union(
        calls.order_by().values_list("created_at"), all=True
    )


# Before every turn (with a rate limit): compiled once (chat.prepared_reads).
_REQUESTS_SINCE = PreparedRead(_requests_since, int, dt.datetime)


def _request_times(user_id: int, since: dt.datetime) -> list[dt.datetime]:
    """When the user's turns and API calls since ``since`` started (the rate limit's window),
    newest first (one query)."""
    return sorted((t for (t,) in _REQUESTS_SINCE.rows(user_id, since)), reverse=True)


def quota_lines(user, now: dt.datetime | None = None) -> tuple[Limits, list[QuotaLine]]:
    """The user's limits and what is left of each, for their usage page."""
    limits = limits_for(user)
    used = spent(user, now)
    tomorrow, next_month = next_resets(now)
    lines = [
        QuotaLine(_("Tokens today"), limits.tokens_per_day, used.tokens_today, tomorrow),
        QuotaLine(
            _("Tokens this month"), limits.tokens_per_month, used.tokens_this_month, next_month
        ),
        QuotaLine(
            _("Cost this month"), limits.cost_per_month, used.cost_this_month, next_month, True
        ),
    ]
    return limits, lines
