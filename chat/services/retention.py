"""Retention (``manage.py purge_expired``): chats not touched for the configured number of days
are deleted, and usage records older than the detail period are rolled up into one record per
day, user, provider, model, API and status, so every total the dashboard and the quotas compute
stays the same.

Idempotent: a second run finds nothing left to do. Files go with their chats: deleting a thread
cascades to its attachments, whose stored files ``chat.signals`` deletes after the commit.
Uploads never sent within a day are deleted on every run, whatever the settings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from chat.models import USAGE_SUMS, SiteSettings, Thread, ThreadShare, Turn, UsageRecord
from chat.services import audit
from chat.services.attachments import store as attachment_store

_ROLLED_KEYS = ("user_id", "provider_id", "provider_name", "model", "api", "status", "estimated")


@dataclass(frozen=True)
class PurgeCounts:
    chats: int = 0
    turns: int = 0
    shares: int = 0
    usage_records: int = 0  # detailed records replaced by roll-ups
    rollups: int = 0  # roll-up records that replace them
    unsent_files: int = 0  # uploads never sent within a day

    def describe(self) -> str:
        return (
            f"{self.chats} chats ({self.turns} messages, {self.shares} shares) deleted; "
            f"{self.usage_records} usage records rolled up into {self.rollups} daily records"
        ) + (f"; {self.unsent_files} unsent files deleted" if self.unsent_files else "")


def _start_of_local_day(days_ago: int, now: dt.datetime | None = None) -> dt.datetime:
    today = timezone.localdate(now or timezone.now())
    day = today - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def expired_threads(days: int, now: dt.datetime | None = None):
    """Threads nobody wrote in or changed for ``days`` days and with no answer still running."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    recent = Turn.objects.filter(
        Q(created_at__gte=cutoff) | Q(finished_at__gte=cutoff) | Q(status__in=Turn.ACTIVE)
    ).values("thread_id")
    return Thread.objects.filter(updated_at__lt=cutoff).exclude(pk__in=recent)


def detailed_usage_before(days: int, now: dt.datetime | None = None):
    """Detailed records from before the local day ``days`` days ago (whole days roll up)."""
    return UsageRecord.objects.filter(
        created_at__lt=_start_of_local_day(days, now), rolled_up=False
    )


def _count_chats(threads) -> tuple[int, int, int]:
    ids = list(threads.values_list("pk", flat=True))
    return (
        len(ids),
        Turn.objects.filter(thread_id__in=ids).count(),
        ThreadShare.objects.filter(thread_id__in=ids).count(),
    )


def _roll_up(records) -> tuple[int, int]:
    """Replace ``records`` by daily sums, in one transaction; returns (replaced, created)."""
    with transaction.atomic():
        # Only the records that exist now: one finishing meanwhile is left for the next run.
        last = records.aggregate(last=Max("pk"))["last"]
        if last is None:
            return 0, 0
        batch = records.filter(pk__lte=last)
        rows = (
            batch.annotate(day=TruncDay("created_at"))
            .values("day", *_ROLLED_KEYS)
            .annotate(first=Min("created_at"), count=Count("pk"), **{n: Sum(n) for n in USAGE_SUMS})
            .order_by()
        )
        rollups = [
            UsageRecord(
                # The day's first record time: the roll-up stays inside its day for every report.
                created_at=row["first"],
                rolled_up=True,
                **{key: row[key] for key in _ROLLED_KEYS},
                **{name: row[name] for name in USAGE_SUMS},
            )
            for row in rows
        ]
        replaced = sum(row["count"] for row in rows)
        batch.delete()
        UsageRecord.objects.bulk_create(rollups, batch_size=500)
        return replaced, len(rollups)


def purge(*, dry_run: bool = False, now: dt.datetime | None = None) -> PurgeCounts:
    """Apply the site's retention settings; with ``dry_run`` only count what would go."""
    site = SiteSettings.load()
    chats = turns = shares = replaced = created = 0
    if site.chat_retention_days:
        threads = expired_threads(site.chat_retention_days, now)
        chats, turns, shares = _count_chats(threads)
        if not dry_run and chats:
            # One by one through the ORM: the delete signals stop answers and tell open pages.
            threads.delete()
    if site.usage_detail_days:
        records = detailed_usage_before(site.usage_detail_days, now)
        if dry_run:
            replaced = records.count()
            created = (
                records.annotate(day=TruncDay("created_at"))
                .values("day", *_ROLLED_KEYS)
                .distinct()
                .count()
            )
        else:
            replaced, created = _roll_up(records)
    unsent = (
        attachment_store.stale_unsent(now).count()
        if dry_run
        else attachment_store.purge_unsent(now=now)
    )
    counts = PurgeCounts(chats, turns, shares, replaced, created, unsent)
    if not dry_run and (chats or replaced or unsent):
        audit.record_event(
            None,
            object_type="retention",
            object_repr="purge_expired",
            action="purged",
            field="counts",
            new=counts.describe(),
        )
    return counts
