"""Who may read a file: the rules of its thread (owner, collaborators, readers of a share;
anybody else, a revoked share, a deleted thread: nobody). A file not sent yet is its
uploader's alone."""

from __future__ import annotations

import uuid

from chat.models import Attachment
from chat.services import permissions
from chat.services.attachments.images import FORMATS

# Served inline (shown by the browser): only what we decoded ourselves. Everything else is
# a download, whatever its type says.
INLINE_TYPES = frozenset(FORMATS.values())


def readable_attachment(user, attachment_id: uuid.UUID) -> Attachment | None:
    """The file if ``user`` may read it, else None (the view answers 404 either way)."""
    if not user.is_authenticated:
        return None
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if attachment is None:
        return None
    if attachment.turn_id is None:
        return attachment if attachment.owner_id == user.pk else None
    if attachment.thread_id is None or permissions.thread_for(user, attachment.thread_id) is None:
        return None
    return attachment


def served_inline(attachment: Attachment) -> bool:
    """Images we decoded and re-encoded, and the model's audio: shown in the page. Never SVG,
    HTML or a document."""
    if attachment.kind == Attachment.Kind.IMAGE:
        return attachment.content_type in INLINE_TYPES
    return attachment.kind == Attachment.Kind.AUDIO and attachment.content_type.startswith("audio/")
