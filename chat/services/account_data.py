"""A user's own data: "Download my data" (a zip of every chat they own, as JSON and Markdown,
and their usage as CSV) and "Delete my account" (chats and shares go; usage records stay for the
organisation's accounting, no longer linked to anyone).

There are no uploads yet: when attachments exist they belong in the archive under
``chats/<id>/`` and go with their chats (thread deletion)."""

from __future__ import annotations

import json
import tempfile
import zipfile
from typing import IO

from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from chat import export
from chat.models import Thread, UsageRecord
from chat.services import audit, conversation, usage

CONFIRM_MISMATCH = _("Type your username (or your password) exactly to confirm.")


def archive_name(user) -> str:
    return f"switchboard-{slugify(user.get_username()) or 'account'}-{timezone.localdate()}.zip"


def _usage_csv(user) -> str:
    first = UsageRecord.objects.filter(user=user).aggregate(first=Min("created_at"))["first"]
    today = timezone.localdate()
    start = timezone.localtime(first).date() if first else today
    filters = usage.UsageFilters(start=start, end=today, user_id=user.pk)
    return "".join(usage.csv_lines(filters))


def write_archive(user, into: IO[bytes]) -> None:
    """Every chat ``user`` owns (``chats/<id>-<title>.json`` and ``.md``, the conversation as
    shown) and ``usage.csv`` (every usage record of theirs, as in the staff CSV)."""
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for thread in Thread.objects.filter(owner=user).order_by("pk").iterator(chunk_size=200):
            path = conversation.thread_path(thread)
            stem = f"chats/{thread.pk}-{slugify(thread.title)[:60] or 'chat'}"
            data = json.dumps(export.as_json(thread, path), indent=2, ensure_ascii=False)
            archive.writestr(f"{stem}.json", data)
            archive.writestr(f"{stem}.md", export.as_markdown(thread, path))
        archive.writestr("usage.csv", _usage_csv(user))
        archive.writestr(
            "README.txt",
            f"Data of {user.get_username()} exported {timezone.now():%Y-%m-%d %H:%M} UTC.\n"
            "chats/: each chat you own as JSON and Markdown (the conversation as shown).\n"
            "usage.csv: every request you made, with tokens and cost.\n",
        )


def build_archive(user) -> IO[bytes]:
    """The archive in a temporary file (in memory while small), rewound for reading."""
    # Not a context manager: FileResponse reads and closes it after the response is sent.
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    write_archive(user, spool)
    spool.seek(0)
    return spool


def confirmation_matches(user, typed: str) -> bool:
    """The user typed their username, or their password (if they have a usable one)."""
    typed = typed or ""
    if typed.strip() and typed.strip() == user.get_username():
        return True
    return bool(typed) and user.has_usable_password() and user.check_password(typed)


def delete_account(user) -> dict[str, int]:
    """Delete ``user``, their chats (with turns and shares) and their shares of others' chats.
    Their usage records stay, unlinked (the dashboard shows "(deleted user)"), so every total
    per model and provider stays right; their messages in others' chats stay, unattributed.
    Deleting the user closes their open sockets (``chat.signals.user_changed``)."""
    with transaction.atomic():
        counts = {
            "chats": Thread.objects.filter(owner=user).count(),
            "usage_records": UsageRecord.objects.filter(user=user).count(),
        }
        audit.record_event(
            user,
            object_type="user",
            object_repr=user.get_username(),
            action="deleted account",
            field="by the user",
            new=f"{counts['chats']} chats deleted; {counts['usage_records']} usage records "
            "kept anonymised",
        )
        user.delete()
    return counts
