"""What a page's composer needs for attaching files: the limits (checked again by the server)
and the files already uploaded for its next message (a reload, or a refused send, keeps them)."""

from __future__ import annotations

from django.conf import settings

from chat.models import Thread
from chat.services import permissions
from chat.services.attachments import store


def composer_context(user, thread: Thread | None) -> dict:
    writable = thread is None or permissions.can_write(getattr(thread, "access", None))
    unsent = (
        list(store.unsent(user, thread.pk if thread else None).order_by("position", "created_at"))
        if writable
        else []
    )
    return {
        "unsent_attachments": unsent,
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_files": settings.MAX_FILES_PER_MESSAGE,
    }
