"""Re-encrypt every stored provider API key with the first of SWITCHBOARD_ENCRYPTION_KEYS.

Rotation (see docs/operations.md): put a new key first in SWITCHBOARD_ENCRYPTION_KEYS and keep
the old one after it, restart, run this command, then drop the old key and restart again.
"""

from __future__ import annotations

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from chat import crypto
from chat.models import Provider
from chat.services import audit


class Command(BaseCommand):
    help = (
        "Re-encrypt every provider API key with the first key of SWITCHBOARD_ENCRYPTION_KEYS "
        "(the others only need to decrypt). --generate prints a new key to put first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--generate", action="store_true", help="Print a new random key and exit."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Check every key can be read; change nothing."
        )

    def handle(self, *args, generate: bool = False, dry_run: bool = False, **options) -> None:
        if generate:
            self.stdout.write(Fernet.generate_key().decode())
            return
        with transaction.atomic():
            providers = list(Provider.objects.select_for_update().exclude(api_key_encrypted=""))
            unreadable, rotated = [], 0
            for provider in providers:
                try:
                    plaintext = crypto.decrypt(provider.api_key_encrypted)
                except ValueError:
                    unreadable.append(provider.name)
                    continue
                if not dry_run:
                    provider.api_key_encrypted = crypto.encrypt(plaintext)
                    provider.save(update_fields=["api_key_encrypted"])
                    audit.record(None, provider, "re-encrypted", "API key", "", audit.SECRET)
                    rotated += 1
            if unreadable:
                # Nothing is half-done: the transaction is rolled back.
                raise CommandError(
                    "No configured key can decrypt the API key of: "
                    + ", ".join(unreadable)
                    + ". Add the old key to SWITCHBOARD_ENCRYPTION_KEYS (after the new one), "
                    "or enter these providers' keys again in the admin."
                )
        if dry_run:
            message = f"All {len(providers)} stored API key(s) can be decrypted; nothing changed."
        else:
            message = f"Re-encrypted {rotated} API key(s) with the first configured key."
        self.stdout.write(self.style.SUCCESS(message))
