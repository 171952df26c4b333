"""Retention: ``manage.py purge_expired`` deletes chats not touched for N days and rolls old
usage records up into daily records that every report and quota still counts the same."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat.models import (
    AuditLogEntry,
    SiteSettings,
    Thread,
    ThreadShare,
    Turn,
    UsageRecord,
)
from chat.services import quotas, retention, usage

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def _ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def _thread(owner, provider, title: str, *, touched: dt.datetime, turns: int = 2) -> Thread:
    thread = Thread.objects.create(owner=owner, provider=provider, model="demo-chat", title=title)
    for index in range(turns):
        turn = Turn.objects.create(
            thread=thread,
            author=owner,
            user_text=f"question {index}",
            output_text="answer",
            status=Turn.Status.COMPLETED,
            provider=provider,
            model="demo-chat",
        )
        Turn.objects.filter(pk=turn.pk).update(created_at=touched, finished_at=touched)
    Thread.objects.filter(pk=thread.pk).update(updated_at=touched)
    return thread


@pytest.fixture
def seeded(user, other_user, provider, settings):
    """Paris time, so a record at 23:30 UTC belongs to the next local day."""
    settings.TIME_ZONE = "Europe/Paris"
    timezone.activate("Europe/Paris")
    old = _thread(user, provider, "old", touched=_ago(40), turns=3)
    ThreadShare.objects.create(thread=old, user=other_user)
    old_too = _thread(other_user, provider, "old too", touched=_ago(31), turns=1)
    kept_recent = _thread(user, provider, "recent", touched=_ago(5))
    # Renamed long ago but answered yesterday: touched.
    answered = _thread(user, provider, "answered lately", touched=_ago(50))
    late = Turn.objects.create(
        thread=answered, author=user, user_text="again", status=Turn.Status.COMPLETED
    )
    Turn.objects.filter(pk=late.pk).update(created_at=_ago(50), finished_at=_ago(1))
    # Old, but an answer is still streaming in it.
    running = _thread(user, provider, "running", touched=_ago(45))
    Turn.objects.create(thread=running, author=user, user_text="…", status=Turn.Status.IN_PROGRESS)
    Turn.objects.filter(thread=running).update(created_at=_ago(45))

    records = []
    for days, who, model, tokens in [
        (15.1, user, "demo-chat", 100),
        (15.2, user, "demo-chat", 50),
        (15.3, user, "demo-reasoner", 70),
        (15.4, other_user, "demo-chat", 10),
        (14.0, user, "demo-chat", 30),
        (3.0, user, "demo-chat", 20),
        (2.0, other_user, "demo-reasoner", 5),
        (0.2, user, "demo-chat", 7),  # today: always in detail
    ]:
        records.append(
            UsageRecord(
                created_at=_ago(days),
                user=who,
                provider=provider,
                provider_name=provider.name,
                model=model,
                api="responses",
                status="completed",
                input_tokens=tokens,
                output_tokens=tokens * 2,
                total_tokens=tokens * 3,
                cost=Decimal(tokens) / 1000,
            )
        )
    # 23:30 UTC on the 10th is 00:30 on the 11th in Paris: its own local day.
    for hour, minute in ((22, 10), (23, 30)):
        records.append(
            UsageRecord(
                created_at=dt.datetime(2026, 11, 10, hour, minute, tzinfo=dt.UTC),
                user=user,
                provider=provider,
                provider_name=provider.name,
                model="demo-chat",
                api="responses",
                status="completed",
                input_tokens=1,
                output_tokens=1,
                total_tokens=2,
            )
        )
    UsageRecord.objects.bulk_create(records)
    site = SiteSettings.load()
    site.chat_retention_days = 30
    site.usage_detail_days = 4
    site.save()
    yield {"old": old, "old_too": old_too, "kept": [kept_recent, answered, running]}
    timezone.deactivate()


def _reports(users) -> dict:
    filters = usage.UsageFilters(start=dt.date(2026, 10, 1), end=dt.date(2026, 11, 20))
    report = usage.report(filters)
    return {
        "totals": report.totals,
        "series": report.series,
        "models": [(r["label"], r["requests"], r["total_tokens"]) for r in report.models],
        "users": [(r["label"], r["requests"], r["cost"]) for r in report.users],
        "spent": [quotas.spent(user, NOW) for user in users],
    }


def _table_sizes() -> tuple[int, ...]:
    return (
        Thread.objects.count(),
        Turn.objects.count(),
        ThreadShare.objects.count(),
        UsageRecord.objects.count(),
    )


def test_dry_run_counts_exactly_and_changes_nothing(seeded, user, other_user):
    sizes = _table_sizes()
    counts = retention.purge(dry_run=True, now=NOW)
    assert counts == retention.PurgeCounts(
        chats=2, turns=4, shares=1, usage_records=7, rollups=6
    )
    assert _table_sizes() == sizes
    assert not AuditLogEntry.objects.filter(object_type="retention").exists()


def test_purge_deletes_old_chats_rolls_up_usage_and_keeps_every_total(seeded, user, other_user):
    before = _reports([user, other_user])
    newer = {
        record.pk: (record.created_at, record.total_tokens)
        for record in UsageRecord.objects.filter(created_at__gte=_ago(3.5))
    }
    dry = retention.purge(dry_run=True, now=NOW)

    counts = retention.purge(now=NOW)

    assert counts == dry
    remaining = set(Thread.objects.values_list("title", flat=True))
    assert remaining == {"recent", "answered lately", "running"}
    assert Turn.objects.filter(thread__title="running").count() == 3
    assert not ThreadShare.objects.exists()
    # Nothing newer than the detail period was touched: same rows, same values.
    assert {
        record.pk: (record.created_at, record.total_tokens)
        for record in UsageRecord.objects.filter(rolled_up=False)
    } == newer
    rollups = UsageRecord.objects.filter(rolled_up=True)
    assert rollups.count() == 6
    assert sorted(rollups.values_list("requests", flat=True)) == [1, 1, 1, 1, 1, 2]
    assert _reports([user, other_user]) == before
    entry = AuditLogEntry.objects.get(object_type="retention")
    assert entry.action == "purged"
    assert entry.new_value == (
        "2 chats (4 messages, 1 shares) deleted; 7 usage records rolled up into 6 daily records"
    )


def test_second_run_finds_nothing(seeded):
    retention.purge(now=NOW)
    assert retention.purge(now=NOW) == retention.PurgeCounts()
    assert AuditLogEntry.objects.filter(object_type="retention").count() == 1


def test_off_by_default_keeps_everything(seeded):
    site = SiteSettings.load()
    site.chat_retention_days = site.usage_detail_days = None
    site.save()
    sizes = _table_sizes()
    assert retention.purge(now=NOW) == retention.PurgeCounts()
    assert _table_sizes() == sizes


def test_command_dry_run_prints_the_counts(seeded):
    out = io.StringIO()
    call_command("purge_expired", "--dry-run", stdout=out)
    # The command uses the real clock: everything seeded is older than both periods by then.
    assert out.getvalue().startswith("Would purge: ")
    assert Thread.objects.count() == 5
    out = io.StringIO()
    call_command("purge_expired", stdout=out)
    assert out.getvalue().startswith("Purged: ")
    assert Thread.objects.count() < 5
