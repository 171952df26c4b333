"""Print a new personal API key for a user (for automation and tests); it is shown only here."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chat.api.keys import create_key, parse_models


class Command(BaseCommand):
    help = "Create a personal API key for USERNAME and print it (it cannot be shown again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="Command-line key", help="A name to recognise it.")
        parser.add_argument("--expires-days", type=int, help="Valid for this many days.")
        parser.add_argument(
            "--models", default="", help="Comma-separated model ids it may use (default: any)."
        )

    def handle(
        self, *args, username: str, name: str, expires_days: int | None, models: str, **options
    ) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1.")
        _, plaintext = create_key(
            user, name, expires_days=expires_days, allowed_models=parse_models(models)
        )
        self.stdout.write(plaintext)
