"""Usage accounting: every turn's tokens and cost are recorded, whatever its status; reports."""

import asyncio
import csv
import datetime as dt
import io
import random
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.models import ModelSetting, Provider, ToolDefinition, Turn, UsageRecord
from chat.services import tools, usage
from chat.services.turns import launch, registry
from chat.upstream.request import Api

pytestmark = pytest.mark.django_db(transaction=True)


async def run_turn(user, thread, text: str) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


@pytest.fixture
def priced(provider):
    return ModelSetting.objects.create(
        provider=provider,
        model="demo-chat",
        price_input=Decimal("2.50"),
        price_cached_input=Decimal("1.25"),
        price_output=Decimal("10"),
    )


# -- cost -----------------------------------------------------------------------------------------


def test_cost_uses_prices_per_million_tokens_with_cached_input_cheaper(provider):
    setting = ModelSetting(
        provider=provider,
        model="m",
        price_input=Decimal("2.50"),
        price_cached_input=Decimal("1.25"),
        price_output=Decimal("10"),
    )
    # 1,000,000 input of which 400,000 cached, 200,000 output:
    # 600k x 2.50/M + 400k x 1.25/M + 200k x 10/M = 1.50 + 0.50 + 2.00
    assert usage.cost_of(setting, 1_000_000, 400_000, 200_000) == Decimal("4.000000")
    setting.price_cached_input = None  # no cached price: cached input costs the input price
    assert usage.cost_of(setting, 1_000_000, 400_000, 200_000) == Decimal("4.500000")
    assert usage.cost_of(setting, 1234, 0, 567) == Decimal("0.008755")
    assert usage.cost_of(None, 1_000_000, 0, 1_000_000) == 0  # no prices known: no estimate


# -- recording from real turns (demo gateway over HTTP) -------------------------------------------


async def test_a_completed_turn_is_recorded_with_tokens_and_cost(user, thread, priced):
    turn = await run_turn(user, thread, "Hello #usage=responses")
    record = await UsageRecord.objects.aget(turn=turn)
    assert (record.user_id, record.thread_id, record.provider_id) == (
        user.pk,
        thread.pk,
        thread.provider_id,
    )
    assert (record.model, record.api, record.status) == ("demo-chat", "responses", "completed")
    assert record.provider_name == "Demo"
    assert record.input_tokens == turn.input_tokens > 0
    assert record.output_tokens == turn.output_tokens > 0
    assert record.total_tokens == turn.total_tokens
    assert record.cost == usage.cost_of(
        priced, turn.input_tokens, turn.cached_tokens, turn.output_tokens
    )
    assert record.cost > 0 and not record.estimated


async def test_chat_completions_usage_schema_is_recorded(user, thread):
    thread.api = Api.CHAT
    await thread.asave()
    turn = await run_turn(user, thread, "Hi there #usage=chat")
    record = await UsageRecord.objects.aget(turn=turn)
    assert record.api == "chat"
    assert record.input_tokens == turn.input_tokens > 0
    assert record.output_tokens == turn.output_tokens > 0


async def test_reasoning_tokens_are_recorded(user, thread):
    turn = await run_turn(user, thread, "think #reasoning")
    record = await UsageRecord.objects.aget(turn=turn)
    assert record.reasoning_tokens == turn.reasoning_tokens > 0


async def test_a_failed_request_is_counted_even_without_tokens(user, thread):
    turn = await run_turn(user, thread, "fail #fault=500")
    record = await UsageRecord.objects.aget(turn=turn)
    assert record.status == "failed" and record.total_tokens == 0


async def test_a_stopped_turn_records_an_estimate_of_what_it_consumed(user, thread):
    turn = await launch.start_turn(user, thread.pk, "long one #chunks=400 #delay=10")
    for _ in range(200):
        await asyncio.sleep(0.02)
        if len(registry._running[turn.pk].state.text) > 5:
            break
    await registry.stop_turn(turn.pk)
    await registry.wait_for(turn.pk)
    turn = await Turn.objects.aget(pk=turn.pk)
    assert turn.status == Turn.Status.CANCELLED and turn.output_text
    record = await UsageRecord.objects.aget(turn=turn)
    assert record.status == "cancelled" and record.estimated
    assert record.output_tokens == -(-len(turn.output_text) // 4) > 0
    assert record.input_tokens > 0


async def test_a_cut_stream_records_its_partial_usage(user, thread):
    turn = await run_turn(user, thread, "cut me #fault=cut")
    assert turn.status == Turn.Status.FAILED and turn.output_text
    record = await UsageRecord.objects.aget(turn=turn)
    assert record.output_tokens > 0 and record.total_tokens > 0


@pytest.fixture
def tool_thread(thread, user):
    calculator = tools.BUILTINS["calculator"]
    thread.tools.add(
        ToolDefinition.objects.create(
            owner=user,
            name="calculator",
            description=calculator.description,
            parameters=calculator.parameters,
            builtin="calculator",
        ),
        ToolDefinition.objects.create(
            owner=user,
            name="get_weather",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        ),
    )
    return thread


async def test_every_step_of_a_tool_loop_is_counted(user, tool_thread, demo_requests, make_thread):
    plain_thread = await sync_to_async(make_thread)(user)
    plain = await run_turn(user, plain_thread, "What is 6*7?")
    looped = await run_turn(user, tool_thread, "What is 6*7? #call=calculator")
    assert len(looped.tool_calls) == 1 and len(demo_requests()) == 3  # 1 + 2 steps
    record = await UsageRecord.objects.aget(turn=looped)
    assert record.total_tokens == looped.total_tokens
    # Two upstream requests: more than the first one alone would have used.
    assert record.input_tokens > (await UsageRecord.objects.aget(turn=plain)).input_tokens


async def test_a_tool_loop_waiting_for_the_user_is_counted_when_it_ends(user, tool_thread):
    turn = await run_turn(user, tool_thread, "weather? #call=get_weather")
    assert turn.status == Turn.Status.AWAITING_TOOL
    await launch.answer_tool_call(user, turn.pk, turn.tool_calls[0]["call_id"], "Sunny")
    await registry.wait_for(turn.pk)
    done = await Turn.objects.aget(pk=turn.pk)
    assert done.status == Turn.Status.COMPLETED
    records = [r async for r in UsageRecord.objects.filter(turn=done)]
    assert sum(r.total_tokens for r in records) == done.total_tokens > 0
    assert sum(r.input_tokens for r in records) == done.input_tokens


def test_a_resumed_tool_loop_records_only_the_new_steps(user, make_thread, priced):
    thread = make_thread(user)
    turn = Turn.objects.create(
        thread=thread,
        author=user,
        user_text="what is 2+2?",
        provider=thread.provider,
        model="demo-chat",
        tool_calls=[{"step": 1, "call_id": "c1", "name": "calculator", "status": "done"}],
        input_tokens=100,
        output_tokens=20,
        total_tokens=120,
        status=Turn.Status.COMPLETED,
    )
    first = usage.record_turn(turn)
    # The loop went on (the user answered a tool call): the turn's totals grew.
    turn.input_tokens, turn.output_tokens, turn.total_tokens = 250, 50, 300
    second = usage.record_turn(turn)
    assert (first.step, first.input_tokens, first.output_tokens) == (0, 100, 20)
    assert (second.step, second.input_tokens, second.output_tokens) == (1, 150, 30)
    assert second.total_tokens == 180
    assert usage.record_turn(turn) is None  # nothing new: nothing recorded twice
    assert sum(r.total_tokens for r in UsageRecord.objects.filter(turn=turn)) == 300


# -- reports --------------------------------------------------------------------------------------


@pytest.fixture
def generated(make_user, provider):
    """A few hundred records over 60 days, 3 users, 2 providers, 3 models."""
    other = Provider.objects.create(name="Other", base_url="https://other.example/v1")
    users = [make_user(f"u{i}") for i in range(3)]
    rng = random.Random(5)
    today = timezone.localdate()
    tz = timezone.get_current_timezone()
    records = []
    for _ in range(400):
        day = today - dt.timedelta(days=rng.randrange(60))
        moment = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), tz)
        prov = rng.choice([provider, other])
        inp, out = rng.randrange(10, 5000), rng.randrange(1, 2000)
        records.append(
            UsageRecord(
                created_at=moment,
                user=rng.choice(users),
                provider=prov,
                provider_name=prov.name,
                model=rng.choice(["gpt-a", "gpt-b", "gpt-c"]),
                api="responses",
                status="completed",
                input_tokens=inp,
                cached_tokens=inp // 3,
                output_tokens=out,
                total_tokens=inp + out,
                cost=Decimal(inp + out) / 100000,
            )
        )
    UsageRecord.objects.bulk_create(records)
    return records, users


def _expected(records, key):
    sums = {}
    for r in records:
        k = key(r)
        tokens, cost, count = sums.get(k, (0, Decimal(0), 0))
        sums[k] = (tokens + r.total_tokens, cost + r.cost, count + 1)
    return sums


def test_report_aggregates_by_period_user_model_and_provider(generated):
    records, _ = generated
    today = timezone.localdate()
    filters = usage.UsageFilters(start=today - dt.timedelta(days=59), end=today)
    report = usage.report(filters)

    assert report.totals["requests"] == 400
    assert report.totals["total_tokens"] == sum(r.total_tokens for r in records)
    assert report.totals["cost"] == sum(r.cost for r in records)

    by_day = _expected(records, lambda r: timezone.localtime(r.created_at).date())
    assert len(report.series) == 60  # every day of the range, also the quiet ones
    for row in report.series:
        tokens, cost, count = by_day.get(row["period"], (0, 0, 0))
        assert (row["total_tokens"], row["cost"], row["requests"]) == (tokens, cost, count)

    by_user = _expected(records, lambda r: r.user.username)
    assert {row["label"]: row["total_tokens"] for row in report.users} == {
        name: tokens for name, (tokens, _, _) in by_user.items()
    }
    assert report.users == sorted(report.users, key=lambda row: -row["total_tokens"])
    by_model = _expected(records, lambda r: f"{r.model} · {r.provider_name}")
    assert {row["label"]: row["requests"] for row in report.models} == {
        label: count for label, (_, _, count) in by_model.items()
    }
    by_provider = _expected(records, lambda r: r.provider_name)
    assert {row["label"]: row["cost"] for row in report.providers} == {
        name: cost for name, (_, cost, _) in by_provider.items()
    }


@pytest.mark.parametrize("granularity", ["week", "month"])
def test_report_groups_by_week_and_month(generated, granularity):
    records, _ = generated
    today = timezone.localdate()
    filters = usage.UsageFilters(
        start=today - dt.timedelta(days=59), end=today, granularity=granularity
    )

    def period(r):
        day = timezone.localtime(r.created_at).date()
        if granularity == "week":
            return day - dt.timedelta(days=day.weekday())
        return day.replace(day=1)

    expected = _expected(records, period)
    series = usage.report(filters).series
    assert {row["period"]: row["total_tokens"] for row in series if row["requests"]} == {
        key: tokens for key, (tokens, _, _) in expected.items()
    }
    assert [row["period"] for row in series] == sorted(expected)  # every period, in order


def test_filters_narrow_the_report(generated):
    records, users = generated
    today = timezone.localdate()
    filters = usage.UsageFilters(
        start=today - dt.timedelta(days=6), end=today, user_id=users[0].pk, model="gpt-b"
    )
    week_ago = today - dt.timedelta(days=6)
    wanted = [
        r
        for r in records
        if r.user == users[0]
        and r.model == "gpt-b"
        and timezone.localtime(r.created_at).date() >= week_ago
    ]
    report = usage.report(filters)
    assert report.totals["requests"] == len(wanted)
    assert report.totals["total_tokens"] == sum(r.total_tokens for r in wanted)


def test_days_follow_the_site_time_zone(settings, user, provider):
    settings.TIME_ZONE = "America/New_York"
    with timezone.override("America/New_York"):
        # 03:00 UTC on 2 March is still 1 March in New York.
        moment = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)
        UsageRecord.objects.create(created_at=moment, user=user, total_tokens=7)
        filters = usage.UsageFilters(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 2))
        series = usage.report(filters).series
    assert [(row["period"], row["total_tokens"]) for row in series] == [
        (dt.date(2026, 3, 1), 7),
        (dt.date(2026, 3, 2), 0),
    ]


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Europe/Berlin", "UTC"])
def test_periods_are_exact_in_every_kind_of_time_zone(zone, generated):
    """Whole-hour zones are summed by UTC hour, others (UTC+5:30) by TruncDay: same result."""
    records, _ = generated
    with timezone.override(zone):
        today = timezone.localdate()
        filters = usage.UsageFilters(start=today - dt.timedelta(days=70), end=today)
        series = usage.report(filters).series
        in_range = [
            r
            for r in records
            if filters.start <= timezone.localtime(r.created_at).date() <= filters.end
        ]
        expected = _expected(in_range, lambda r: timezone.localtime(r.created_at).date())
        assert usage._whole_hour_offsets(filters) == (zone != "Asia/Kolkata")
    assert {row["period"]: row["total_tokens"] for row in series if row["requests"]} == {
        day: tokens for day, (tokens, _, _) in expected.items()
    }


def test_csv_export_has_every_filtered_record(generated):
    records, users = generated
    today = timezone.localdate()
    filters = usage.UsageFilters(
        start=today - dt.timedelta(days=59), end=today, user_id=users[1].pk
    )
    rows = list(csv.DictReader(io.StringIO("".join(usage.csv_lines(filters)))))
    mine = [r for r in records if r.user == users[1]]
    assert len(rows) == len(mine)
    assert {row["user"] for row in rows} == {users[1].username}
    assert sum(int(row["total_tokens"]) for row in rows) == sum(r.total_tokens for r in mine)
    assert sum(Decimal(row["cost"]) for row in rows) == sum(r.cost for r in mine)
    assert list(rows[0]) == list(usage.CSV_COLUMNS)
    assert rows == sorted(rows, key=lambda row: row["time"])


def test_csv_defuses_spreadsheet_formulas_in_names(make_user):
    user = make_user("=HYPERLINK(evil)")
    UsageRecord.objects.create(user=user, model="m", total_tokens=1)
    text = "".join(usage.csv_lines(usage.UsageFilters.default()))
    assert "'=HYPERLINK(evil)" in text
