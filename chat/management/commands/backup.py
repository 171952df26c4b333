"""``manage.py backup PATH``: a consistent copy of the SQLite database, taken while the app
serves (README "Backups"). On PostgreSQL it prints the pg_dump command to use instead."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from chat.services import backup


class Command(BaseCommand):
    help = "Copy the SQLite database to PATH while the app keeps serving (online backup API)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="The backup file to write (e.g. /backups/sb.sqlite3).")
        parser.add_argument("--overwrite", action="store_true", help="Replace PATH if it exists.")

    def handle(self, *args, path: str, overwrite: bool = False, **options) -> None:
        try:
            written = backup.backup(path, overwrite=overwrite)
        except backup.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Backed up to {written} ({written.stat().st_size} bytes).")
        self.stdout.write(
            "Provider API keys in it are encrypted with SWITCHBOARD_ENCRYPTION_KEYS (else the "
            "secret key): keep those too, apart from the backup, to restore it."
        )
