"""Team budgets: a monthly cost and/or token budget per team, on top of the per-user quotas.

A user's spend counts against their billing team (``UserQuota.billing_team``; empty: the first
team they joined), recorded on each usage record when it is written. :func:`check` runs with
the per-user quota check before every turn: one query when the user's team has no budget, two
when it has. Crossing a threshold (``BUDGET_WARNING_PERCENT`` and 100 %) is recorded once per
team, month and budget (:class:`chat.models.BudgetAlert`) and, with ``BUDGET_WEBHOOK_URL``,
posted to a Slack/Mattermost/Teams-style incoming webhook off the request path."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal

import httpx
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from chat.models import BudgetAlert, Team, TeamSpend, UsageRecord, UserQuota
from chat.services import quotas  # module, not names: quotas.check calls back into here
from chat.services.refusals import TurnRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BudgetLine:
    """One budget of one team this month."""

    team_id: int
    team_name: str
    metric: str  # "cost" or "tokens"
    limit: Decimal | int
    used: Decimal | int
    resets: dt.datetime

    @property
    def percent(self) -> int:
        if not self.limit:
            return 100
        return int(self.used * 100 / self.limit)

    @property
    def remaining(self) -> Decimal | int:
        return max(self.limit - self.used, 0)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    def amount(self, value: Decimal | int) -> str:
        return quotas.money(value) if self.metric == "cost" else quotas.tokens(value)

    @property
    def name(self) -> str:
        return _("monthly cost budget") if self.metric == "cost" else _("monthly token budget")

    @property
    def resets_on(self) -> str:
        return formats.date_format(timezone.localtime(self.resets), "j F Y")

    def _values(self) -> dict[str, object]:
        return {
            "team": self.team_name,
            "budget": self.name,
            "limit": self.amount(self.limit),
            "used": self.amount(self.used),
            "left": self.amount(self.remaining),
            "percent": self.percent,
            "resets": self.resets_on,
        }

    def refusal(self) -> str:
        if not self.limit:
            return (
                _(
                    "Your team %(team)s has a %(budget)s of %(limit)s, "
                    "so no messages can be sent. Ask an administrator."
                )
                % self._values()
            )
        return (
            _(
                "Your team %(team)s has used all of its %(budget)s of %(limit)s. "
                "Messages can be sent again when it resets on %(resets)s."
            )
            % self._values()
        )

    def summary(self) -> str:
        """What is left, for the banner and the webhook."""
        if self.exhausted:
            return (
                _(
                    "%(team)s has used all of its %(budget)s of %(limit)s (%(used)s used); "
                    "messages are refused until %(resets)s."
                )
                % self._values()
            )
        return (
            _(
                "%(team)s has used %(percent)s %% of its %(budget)s: %(left)s left of %(limit)s "
                "until %(resets)s."
            )
            % self._values()
        )


_TEAM_SQL: str | None = None


def _team_sql() -> str:
    """The user's billing team, its budgets and this month's spend, in one statement."""
    team = Team._meta.db_table
    quota = UserQuota._meta.db_table
    members = Team.members.through._meta.db_table
    spend = TeamSpend._meta.db_table
    return (
        f"SELECT t.id, t.name, t.cost_budget_per_month, t.token_budget_per_month, "
        f"s.cost, s.tokens FROM {team} t "
        f"LEFT JOIN {spend} s ON s.team_id = t.id AND s.month = %s "
        f"WHERE t.id = COALESCE((SELECT billing_team_id FROM {quota} WHERE user_id = %s), "
        f"(SELECT team_id FROM {members} WHERE user_id = %s ORDER BY id LIMIT 1))"
    )


def month_of(moment: dt.datetime | None = None) -> dt.date:
    """The first day of ``moment``'s month in the site's time zone."""
    return quotas.period_starts(moment)[1].date()


def _billing_team_row(user_id: int, now: dt.datetime | None = None) -> tuple | None:
    global _TEAM_SQL
    _TEAM_SQL = _TEAM_SQL or _team_sql()
    with connection.cursor() as cursor:
        cursor.execute(_TEAM_SQL, [month_of(now), user_id, user_id])
        return cursor.fetchone()


def billing_team_id(user_id: int | None) -> int | None:
    if user_id is None:
        return None
    row = _billing_team_row(user_id)
    return row[0] if row else None


def _decimal(value, places: str = "0.01") -> Decimal | None:
    # SQLite hands raw SQL decimals back as numbers.
    return None if value is None else Decimal(str(value)).quantize(Decimal(places))


def team_lines(
    team_id: int,
    name: str,
    cost_limit,
    token_limit,
    cost_spent=None,
    tokens_spent=None,
    now: dt.datetime | None = None,
) -> list[BudgetLine]:
    """The team's budgets with what its members spent this month."""
    cost_limit = _decimal(cost_limit)
    lines = []
    _, resets = quotas.next_resets(now)
    if cost_limit is not None:
        used = _decimal(cost_spent or 0, "0.000001")
        lines.append(BudgetLine(team_id, name, "cost", cost_limit, used, resets))
    if token_limit is not None:
        lines.append(
            BudgetLine(team_id, name, "tokens", int(token_limit), int(tokens_spent or 0), resets)
        )
    return lines


def lines_for(user, now: dt.datetime | None = None) -> list[BudgetLine]:
    """The budgets of ``user``'s billing team this month (empty: no team or no budget)."""
    row = _billing_team_row(user.pk, now)
    if row is None or (row[2] is None and row[3] is None):
        return []
    return team_lines(*row, now=now)


def warning_percent() -> int:
    return settings.BUDGET_WARNING_PERCENT


def banner_lines(user) -> list[BudgetLine]:
    """What the user's team banner shows: budgets at or past the warning threshold."""
    if not user.is_authenticated:
        return []
    return [line for line in lines_for(user) if line.percent >= warning_percent()]


def check(user, now: dt.datetime | None = None) -> None:
    """Raise :class:`TurnRejected` when the user's billing team has used up a budget.
    Thresholds crossed since the last turn are recorded (and announced) on the way."""
    lines = lines_for(user, now)
    if not lines:
        return
    note_thresholds(lines, now)
    for line in lines:
        if line.exhausted:
            raise TurnRejected(line.refusal())


# -- thresholds and the webhook -----------------------------------------------------------------


def thresholds() -> tuple[int, ...]:
    return tuple(sorted({warning_percent(), 100}))


def note_thresholds(lines: list[BudgetLine], now: dt.datetime | None = None) -> list[BudgetAlert]:
    """Record each threshold a budget has reached this month, once; the webhook is called for
    each new record after the transaction commits. Returns the new records."""
    reached = [
        (line, threshold)
        for line in lines
        for threshold in thresholds()
        if line.percent >= threshold
    ]
    if not reached:
        return []
    _day, month = quotas.period_starts(now)
    month_day = month.date()
    team_ids = {line.team_id for line in lines}
    known = set(
        BudgetAlert.objects.filter(team_id__in=team_ids, month=month_day).values_list(
            "team_id", "metric", "threshold"
        )
    )
    created = []
    for line, threshold in reached:
        if (line.team_id, line.metric, threshold) in known:
            continue
        try:
            with transaction.atomic():
                alert = BudgetAlert.objects.create(
                    team_id=line.team_id, month=month_day, metric=line.metric, threshold=threshold
                )
        except IntegrityError:  # another worker recorded it first: it sends the webhook
            continue
        created.append(alert)
        text = _("Budget alert: %(summary)s") % {"summary": line.summary()}
        log.info("budget threshold reached: %s", text)
        transaction.on_commit(lambda pk=alert.pk, text=text: _send_later(pk, text))
    return created


def _send_later(alert_id: int, text: str) -> None:
    if not settings.BUDGET_WEBHOOK_URL:
        return
    threading.Thread(
        target=deliver, args=(alert_id, text), name="budget-webhook", daemon=True
    ).start()


def deliver(alert_id: int, text: str) -> bool:
    """POST ``{"text": …}`` to the webhook and record the outcome on the alert."""
    try:
        response = httpx.post(
            settings.BUDGET_WEBHOOK_URL,
            json={"text": text},
            timeout=settings.BUDGET_WEBHOOK_TIMEOUT,
        )
        response.raise_for_status()
        error = ""
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("budget webhook failed for alert %s: %s", alert_id, error)
    try:
        BudgetAlert.objects.filter(pk=alert_id).update(
            delivered_at=None if error else timezone.now(), error=error
        )
    finally:
        close_old_connections()
        if threading.current_thread() is not threading.main_thread():
            connection.close()
    return not error


def record_usage_team(record: UsageRecord) -> None:
    """A new usage record counts against its user's billing team (before it is saved)."""
    if record.team_id is None and record.user_id is not None:
        record.team_id = billing_team_id(record.user_id)


def add_spend(team_id: int, month: dt.date, tokens: int, cost: Decimal) -> None:
    """Add to the team's running totals for ``month`` (row created on first use)."""
    rows = TeamSpend.objects.filter(team_id=team_id, month=month)
    if rows.update(tokens=F("tokens") + tokens, cost=F("cost") + cost):
        return
    try:
        with transaction.atomic():
            TeamSpend.objects.create(team_id=team_id, month=month, tokens=tokens, cost=cost)
    except IntegrityError:  # another worker created it meanwhile
        rows.update(tokens=F("tokens") + tokens, cost=F("cost") + cost)


def after_usage(record: UsageRecord) -> None:
    """A usage record was written: add it to its team's month, which may reach a threshold."""
    if record.team_id is None:
        return
    month = month_of(record.created_at)
    add_spend(record.team_id, month, record.total_tokens, record.cost)
    team = (
        Team.objects.filter(pk=record.team_id)
        .values_list("id", "name", "cost_budget_per_month", "token_budget_per_month")
        .first()
    )
    spend = TeamSpend.objects.filter(team_id=record.team_id, month=month).values_list(
        "cost", "tokens"
    )
    if team is not None and month == month_of():
        note_thresholds(team_lines(*team, *(spend.first() or (0, 0))))


# -- the staff views: every team's budgets, and spend month by month ----------------------------

HISTORY_MONTHS = 12


@dataclass(frozen=True)
class TeamOverview:
    team_id: int
    name: str
    lines: list[BudgetLine]
    # (first day of the month, cost, tokens), newest first, for the last HISTORY_MONTHS months.
    months: list[tuple[dt.date, Decimal, int]]
    cost_budget: Decimal | None
    token_budget: int | None

    @property
    def warned(self) -> list[BudgetLine]:
        return [line for line in self.lines if line.percent >= warning_percent()]


def _months(now: dt.datetime | None = None) -> list[dt.date]:
    month = month_of(now)
    months = [month]
    for _month in range(HISTORY_MONTHS - 1):
        months.append((months[-1] - dt.timedelta(days=1)).replace(day=1))
    return months


def team_overview(now: dt.datetime | None = None) -> list[TeamOverview]:
    """Every team: this month's budgets and the last months' spend (two queries)."""
    months = _months(now)
    spend = {
        (row.team_id, row.month): row
        for row in TeamSpend.objects.filter(month__gte=months[-1]).only(
            "team_id", "month", "tokens", "cost"
        )
    }
    overview = []
    for team_id, name, cost_budget, token_budget in Team.objects.order_by("name").values_list(
        "id", "name", "cost_budget_per_month", "token_budget_per_month"
    ):
        history = []
        for month in months:
            row = spend.get((team_id, month))
            history.append((month, row.cost if row else Decimal(0), row.tokens if row else 0))
        lines = team_lines(
            team_id, name, cost_budget, token_budget, history[0][1], history[0][2], now=now
        )
        overview.append(TeamOverview(team_id, name, lines, history, cost_budget, token_budget))
    return overview


def warned_lines(now: dt.datetime | None = None) -> list[BudgetLine]:
    """Budgets of every team at or past the warning threshold this month (the dashboard)."""
    return [line for team in team_overview(now) for line in team.warned]
