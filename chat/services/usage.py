"""Token accounting and limits. Called by generation before a turn starts and when it ends.

Also the usage reports: the staff dashboard's aggregates (computed in SQL, grouped by day, week
or month) and the CSV export of the same filtered records.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import CharField, Count, F, QuerySet, Sum
from django.db.models.functions import Cast, Substr, TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from chat.models import (
    MEDIA_TOKEN_FIELDS,
    USAGE_TOKEN_FIELDS,
    ModelSetting,
    Provider,
    Turn,
    UsageRecord,
)
from chat.services import quotas

MILLION = Decimal(1_000_000)
COST_PLACES = Decimal("0.000001")
CHARS_PER_TOKEN = 4  # the usual rule of thumb, for turns the gateway reported no usage for
_TOKEN_FIELDS = (*USAGE_TOKEN_FIELDS, *MEDIA_TOKEN_FIELDS)


def check_allowed(user, provider, model: str) -> dict:
    """Raise ``refusals.TurnRejected`` with a clear message when ``user`` may not send now
    (model turned off, rate limit or quota). Runs inside the transaction that creates the turn.
    Returns the model's default parameters (read along with its switch)."""
    return quotas.check(user, provider, model)


# -- recording ----------------------------------------------------------------------------------


def cost_of(
    setting: ModelSetting | None, input_tokens: int, cached_tokens: int, output_tokens: int
) -> Decimal:
    """Estimated cost from the model's prices per million tokens (0 without prices).

    Cached tokens are part of the input tokens and billed at the cached price (the input price
    when no cached price is set); reasoning tokens are part of the output tokens."""
    if setting is None:
        return Decimal(0)
    cached = min(cached_tokens, input_tokens)
    cached_price = (
        setting.price_input if setting.price_cached_input is None else setting.price_cached_input
    )
    total = (
        (input_tokens - cached) * setting.price_input
        + cached * cached_price
        + output_tokens * setting.price_output
    )
    return (Decimal(total) / MILLION).quantize(COST_PLACES)


def _estimate(turn: Turn) -> dict[str, int]:
    """Tokens of a turn that was stopped before the gateway reported usage (a lower bound)."""
    produced = len(turn.output_text) + len(turn.reasoning_text)
    return {
        "input_tokens": math.ceil(len(turn.user_text) / CHARS_PER_TOKEN),
        "cached_tokens": 0,
        "output_tokens": math.ceil(produced / CHARS_PER_TOKEN),
        "reasoning_tokens": math.ceil(len(turn.reasoning_text) / CHARS_PER_TOKEN),
        "image_tokens": turn.image_tokens,  # images and audio cannot be guessed from text
        "audio_tokens": turn.audio_tokens,
    }


def _new_tokens(
    turn: Turn, *, recount: bool, deleted: bool, recorded: dict[str, int] | None
) -> tuple[dict[str, int], bool, int] | None:
    """The tokens of ``turn`` not recorded yet, whether they are estimated, and how many records
    came before (the new record's ``step``); ``None`` when there is nothing new to record."""
    tokens = {name: getattr(turn, name) for name in _TOKEN_FIELDS}
    estimated = False
    if (
        not turn.total_tokens
        and not any(tokens.values())
        and (turn.output_text or turn.reasoning_text)
    ):
        tokens, estimated = _estimate(turn), True
    steps = 0
    earlier: dict[str, int | None] = {}
    if deleted:
        if recorded and any(recorded.get(name) for name in _TOKEN_FIELDS):
            steps, earlier = 1, dict(recorded)
    elif turn.tool_calls or recount:
        # Only a tool loop pauses and resumes a turn (and only a reaper closes one under its
        # runner), so only then can it have records already.
        earlier = UsageRecord.objects.filter(turn_id=turn.pk).aggregate(
            steps=Count("pk"), **{name: Sum(name) for name in _TOKEN_FIELDS}
        )
        steps = earlier.pop("steps")
    if steps:
        tokens = {name: max(tokens[name] - (earlier.get(name) or 0), 0) for name in _TOKEN_FIELDS}
        if not any(tokens.values()):
            return None
    return tokens, estimated, steps


def _provider_name(turn: Turn) -> str:
    """The provider's name as it is now (kept on the record: the provider may be deleted)."""
    if Turn.provider.is_cached(turn):
        return turn.provider.name if turn.provider else ""
    return Provider.objects.filter(pk=turn.provider_id).values_list("name", flat=True).first() or ""


def record_turn(
    turn: Turn,
    *,
    recount: bool = False,
    deleted: bool = False,
    recorded: dict[str, int] | None = None,
) -> UsageRecord | None:
    """Account a finished turn's usage, whatever its status (stopped turns used tokens too).

    Safe to call more than once for a turn with tool calls (a loop that pauses for the user and
    resumes reports its running totals each time): each call then records only what is new since
    the last record, as the next ``step``. The first call always records, so every request
    counts. A turn that ended before the gateway reported usage gets an estimate.

    ``recount``: look for earlier records even without tool calls (a turn closed by a reaper,
    which recorded it, whose runner came back with the whole answer). ``deleted``: the turn was
    deleted with its thread (which unlinks its earlier records), so the record links to neither;
    ``recorded`` is then what earlier runners of the turn had recorded, as far as the caller
    knows."""
    new = _new_tokens(turn, recount=recount, deleted=deleted, recorded=recorded)
    if new is None:
        return None
    tokens, estimated, steps = new
    total = tokens["input_tokens"] + tokens["output_tokens"]
    if not estimated and not steps:
        total = max(turn.total_tokens, total)
    setting = ModelSetting.objects.filter(provider_id=turn.provider_id, model=turn.model).first()
    return UsageRecord.objects.create(
        created_at=turn.finished_at or timezone.now(),
        user_id=turn.author_id,
        thread_id=None if deleted else turn.thread_id,
        turn_id=None if deleted else turn.pk,
        step=steps,
        provider_id=turn.provider_id,
        provider_name=_provider_name(turn),
        model=turn.model,
        api=turn.api,
        status=turn.status,
        total_tokens=total,
        cost=cost_of(
            setting, tokens["input_tokens"], tokens["cached_tokens"], tokens["output_tokens"]
        ),
        estimated=estimated,
        **tokens,
    )


# -- reports ------------------------------------------------------------------------------------

GRANULARITIES = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
_SUMS = {
    # A daily roll-up of old records (chat/services/retention.py) stands for many requests.
    "requests": Sum("requests"),
    "input_tokens": Sum("input_tokens"),
    "cached_tokens": Sum("cached_tokens"),
    "output_tokens": Sum("output_tokens"),
    "reasoning_tokens": Sum("reasoning_tokens"),
    "total_tokens": Sum("total_tokens"),
    "cost": Sum("cost"),
    "image_tokens": Sum("image_tokens"),
    "audio_tokens": Sum("audio_tokens"),
}


@dataclass(frozen=True)
class UsageFilters:
    """What the dashboard shows: a date range (inclusive, in the site's time zone) and slices."""

    start: dt.date
    end: dt.date
    granularity: str = "day"
    user_id: int | None = None
    provider_id: int | None = None
    model: str = ""
    api: str = ""
    status: str = ""

    @classmethod
    def default(cls, today: dt.date | None = None) -> UsageFilters:
        today = today or timezone.localdate()
        return cls(start=today - dt.timedelta(days=29), end=today)

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        tz = timezone.get_current_timezone()
        start = dt.datetime.combine(self.start, dt.time.min, tzinfo=tz)
        end = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        return start, end


def filtered(filters: UsageFilters) -> QuerySet[UsageRecord]:
    start, end = filters.bounds()
    records = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
    if filters.user_id:
        records = records.filter(user_id=filters.user_id)
    if filters.provider_id:
        records = records.filter(provider_id=filters.provider_id)
    for name in ("model", "api", "status"):
        if value := getattr(filters, name):
            records = records.filter(**{name: value})
    return records


def _clean(row: dict) -> dict:
    for name in _SUMS:
        if row.get(name) is None:
            row[name] = Decimal(0) if name == "cost" else 0
    return row


def _periods(filters: UsageFilters) -> list[dt.date]:
    """Every period start in the range, so the chart shows the days nothing happened too."""
    day = filters.start
    if filters.granularity == "week":
        day -= dt.timedelta(days=day.weekday())
    elif filters.granularity == "month":
        day = day.replace(day=1)
    periods = []
    while day <= filters.end:
        periods.append(day)
        if filters.granularity == "day":
            day += dt.timedelta(days=1)
        elif filters.granularity == "week":
            day += dt.timedelta(weeks=1)
        else:
            day = (day + dt.timedelta(days=32)).replace(day=1)
    return periods


def _period_of(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _whole_hour_offsets(filters: UsageFilters) -> bool:
    """True when the site's time zone is a whole number of hours from UTC all through the
    range (so every UTC hour falls inside one local day); false for e.g. Asia/Kolkata."""
    tz = timezone.get_current_timezone()
    day = filters.start - dt.timedelta(days=1)
    while day <= filters.end + dt.timedelta(days=1):
        for hour in (0, 12):
            offset = dt.datetime.combine(day, dt.time(hour), tzinfo=tz).utcoffset()
            if offset is not None and offset.total_seconds() % 3600:
                return False
        day += dt.timedelta(days=1)
    return True


def _by_utc_hour(records: QuerySet[UsageRecord], granularity: str) -> dict[dt.date, dict]:
    """Sum by UTC hour in SQL (a plain string prefix of the stored time: no per-row function
    call, unlike TruncDay on SQLite), then fold the at most 24 rows a day into local periods."""
    hour = Substr(Cast("created_at", output_field=CharField()), 1, 13)
    rows = records.annotate(hour=hour).values("hour").annotate(**_SUMS).order_by()
    found: dict[dt.date, dict] = {}
    for row in rows:
        moment = dt.datetime.strptime(row.pop("hour")[:13], "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
        period = _period_of(timezone.localtime(moment).date(), granularity)
        into = found.setdefault(period, _clean({}))
        for name, value in _clean(row).items():
            into[name] += value
    return found


def time_series(records: QuerySet[UsageRecord], filters: UsageFilters) -> list[dict]:
    """Sums per day, week or month of the site's time zone, for every period of the range."""
    if _whole_hour_offsets(filters):
        found = _by_utc_hour(records, filters.granularity)
    else:
        trunc = GRANULARITIES.get(filters.granularity, TruncDay)
        rows = records.annotate(period=trunc("created_at")).values("period").annotate(**_SUMS)
        found = {
            timezone.localtime(row.pop("period")).date(): _clean(row)
            for row in rows.order_by("period")
        }
    series = []
    for period in _periods(filters):
        row = found.pop(period, None) or _clean({})
        series.append({"period": period, **row})
    return series


def totals(records: QuerySet[UsageRecord]) -> dict:
    """Requests, tokens of each kind and cost of all the records, as one row."""
    return _clean(records.aggregate(**_SUMS))


def _grouped(records: QuerySet[UsageRecord], *keys: str, limit: int | None = None) -> list[dict]:
    rows = records.values(*keys).annotate(**_SUMS).order_by("-total_tokens", "-cost", *keys)
    return [_clean(row) for row in (rows[:limit] if limit else rows)]


def by_user(records: QuerySet[UsageRecord], limit: int | None = None) -> list[dict]:
    rows = _grouped(records, "user_id", limit=limit)
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[row["user_id"] for row in rows if row["user_id"]])
        .values_list("pk", "username")
    )
    for row in rows:
        row["label"] = names.get(row["user_id"], "(deleted user)")
    return rows


def by_model(records: QuerySet[UsageRecord], limit: int | None = None) -> list[dict]:
    rows = _grouped(records, "provider_name", "model", limit=limit)
    for row in rows:
        row["label"] = f"{row['model'] or '(unknown)'} · {row['provider_name']}"
    return rows


def by_provider(records: QuerySet[UsageRecord]) -> list[dict]:
    rows = _grouped(records, "provider_name")
    for row in rows:
        row["label"] = row["provider_name"] or "(deleted provider)"
    return rows


@dataclass
class Report:
    totals: dict
    series: list[dict]
    users: list[dict]
    models: list[dict]
    providers: list[dict]

    @property
    def busy_periods(self) -> list[dict]:
        """The periods with usage, newest first (the chart shows the quiet ones too)."""
        return [row for row in reversed(self.series) if row["requests"]]

    def chart_data(self) -> dict:
        """What static/js/usage.js draws (numbers only; labels are escaped by json_script)."""

        def column(rows: Iterable[dict], name: str) -> list:
            return [float(row[name]) if name == "cost" else row[name] for row in rows]

        return {
            "periods": [row["period"].isoformat() for row in self.series],
            "input": column(self.series, "input_tokens"),
            "output": column(self.series, "output_tokens"),
            "cost": column(self.series, "cost"),
            "users": {
                "labels": [row["label"] for row in self.users[:15]],
                "tokens": column(self.users[:15], "total_tokens"),
            },
            "models": {
                "labels": [row["label"] for row in self.models[:15]],
                "tokens": column(self.models[:15], "total_tokens"),
            },
        }


def report(filters: UsageFilters, *, top: int = 50) -> Report:
    """Every aggregate of the dashboard: a handful of GROUP BY queries over indexed columns."""
    records = filtered(filters)
    return Report(
        totals=totals(records),
        series=time_series(records, filters),
        users=by_user(records, top),
        models=by_model(records, top),
        providers=by_provider(records),
    )


# -- CSV export ---------------------------------------------------------------------------------

# The columns of the CSV export that are a usage record's own, in the order of the file.
_CSV_RECORD_COLUMNS = (
    "thread_id",
    "turn_id",
    "step",
    "provider_name",
    "model",
    "api",
    "status",
    *USAGE_TOKEN_FIELDS,
    "total_tokens",
    "cost",
    "estimated",
    "requests",
    "kind",
    # Added after the first release of the export: last, so existing readers keep working.
    *MEDIA_TOKEN_FIELDS,
)
CSV_COLUMNS = (
    "time",
    "user",
    *("provider" if name == "provider_name" else name for name in _CSV_RECORD_COLUMNS),
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: defuse user-chosen text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(filters: UsageFilters) -> Iterator[str]:
    """The filtered records as CSV lines, streamed from the database in chunks."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = (
        filtered(filters)
        .order_by("created_at", "pk")
        .values_list("created_at", F("user__username"), *_CSV_RECORD_COLUMNS)
    )
    for row in rows.iterator(chunk_size=2000):
        created, username, *rest = row
        stamp = timezone.localtime(created).isoformat(timespec="seconds")
        yield writer.writerow([stamp, _cell(username), *(_cell(value) for value in rest)])
