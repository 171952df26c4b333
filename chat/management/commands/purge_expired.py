"""Apply the retention settings (admin → Site settings → Retention): delete chats not touched
for the configured days and roll old usage records up into daily totals. Safe to run often
(e.g. daily from a systemd timer, docs/deploy/); ``--dry-run`` prints the counts only."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from chat.services import retention


class Command(BaseCommand):
    help = "Delete expired chats and roll up old usage records (see the retention settings)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be purged; change nothing."
        )

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        counts = retention.purge(dry_run=dry_run)
        prefix = "Would purge: " if dry_run else "Purged: "
        self.stdout.write(prefix + counts.describe())
