"""``manage.py restore PATH``: put a SQLite backup back. Stop every worker first; the current
database is kept beside it (``<db>.before-restore-<time>``). Then run ``manage.py migrate``
(a backup from an older version gets the newer tables) and start the workers."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from chat.services import backup


class Command(BaseCommand):
    help = "Replace the SQLite database by a backup (stop the workers first)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="A file written by manage.py backup.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def handle(self, *args, path: str, interactive: bool = True, **options) -> None:
        if interactive:
            answer = input(
                "This replaces the database by the backup (the current one is kept beside it). "
                "Are the workers stopped? Type 'yes' to go on: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("Restore cancelled.")
        try:
            kept = backup.restore(path)
        except backup.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Restored {path}. The previous database is kept as {kept}. "
            "Now run manage.py migrate, then start the workers."
        )
