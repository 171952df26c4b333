"""Storing an upload: check it against the limits, find out what it is from its bytes,
re-encode images, then write the file (and an image's thumbnail) to storage and only then the
row, so no database lock is held while bytes are hashed, decoded or written.

Sync code: the upload view runs in Django's thread pool, never on the event loop."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chat.models import Attachment
from chat.services import permissions
from chat.services.attachments import images, limits, sniffing
from chat.services.attachments.errors import UploadRefused
from chat.services.refusals import ReadOnly

log = logging.getLogger(__name__)

UNSENT_LIFETIME = dt.timedelta(days=1)


def store_upload(user, upload: UploadedFile, *, thread_id: int | None) -> Attachment:
    """Check and store one file the user is attaching to their next message in ``thread_id``
    (None: the first message of a new chat). Raises UploadRefused with the reason."""
    if thread_id is not None:
        _check_writable(user, thread_id)
    purge_unsent(owner=user)
    limits.check_file_size(upload.size or 0)
    waiting = unsent(user, thread_id).count()
    limits.check_files_per_message(waiting + 1)
    limits.check_daily_quota(user, upload.size)
    name = sniffing.clean_name(upload.name or "")
    data = b"".join(upload.chunks())
    limits.check_file_size(len(data))  # the header's size is the browser's claim
    attachment = Attachment(
        id=uuid.uuid4(),
        owner=user,
        thread_id=thread_id,
        name=name,
        created_at=timezone.now(),
        position=waiting,
    )
    stored, thumbnail = _describe(attachment, name, data)
    _save(attachment, stored, thumbnail)
    return attachment


def _check_writable(user, thread_id: int) -> None:
    try:
        thread = permissions.writable_thread_for(user, thread_id)
    except ReadOnly as exc:
        raise UploadRefused(str(exc)) from None
    if thread is None:
        raise UploadRefused(_("This chat no longer exists."))


def _describe(attachment: Attachment, name: str, data: bytes) -> tuple[bytes, bytes | None]:
    """Fill in what the file is (kind, type, size, hash, sides); returns the bytes to store
    and, for an image, its thumbnail. An image is stored re-encoded, without its metadata."""
    image = images.open_image(data)
    thumbnail = None
    if image is not None:
        checked = images.check_image(image, settings.MAX_IMAGE_PIXELS)
        data, thumbnail = checked.data, checked.thumbnail
        attachment.kind, attachment.content_type = Attachment.Kind.IMAGE, checked.content_type
        attachment.width, attachment.height = checked.width, checked.height
    else:
        sniffed = sniffing.sniff_document(name, data)
        attachment.kind, attachment.content_type = sniffed.kind, sniffed.content_type
    attachment.size = len(data)
    attachment.sha256 = hashlib.sha256(data).hexdigest()
    return data, thumbnail


def _save(attachment: Attachment, data: bytes, thumbnail: bytes | None) -> None:
    """Files first, then the row (in its own short transaction); files of a row that could not
    be written are removed again."""
    attachment.file.save(attachment.name, ContentFile(data), save=False)
    try:
        if thumbnail is not None:
            attachment.thumbnail.save("thumb.webp", ContentFile(thumbnail), save=False)
        with transaction.atomic():
            attachment.save(force_insert=True)
    except BaseException:
        delete_files([attachment.file.name, attachment.thumbnail.name])
        raise


def unsent(user, thread_id: int | None):
    """The user's files waiting for their next message in ``thread_id`` (None: a new chat)."""
    files = Attachment.objects.filter(owner=user, turn__isnull=True, from_model=False)
    return (
        files.filter(thread__isnull=True)
        if thread_id is None
        else files.filter(thread_id=thread_id)
    )


def remove_unsent(user, attachment_id: uuid.UUID) -> bool:
    """The user took a file off their message before sending it. False if there is no such
    unsent file of theirs (sent files go with their message)."""
    deleted = Attachment.objects.filter(
        pk=attachment_id, owner=user, turn__isnull=True, from_model=False
    ).delete()[0]
    return bool(deleted)


def stale_unsent(now: dt.datetime | None = None):
    """Uploads never sent within a day of their upload."""
    return Attachment.objects.filter(
        turn__isnull=True,
        from_model=False,
        created_at__lt=(now or timezone.now()) - UNSENT_LIFETIME,
    )


def purge_unsent(*, owner=None, now: dt.datetime | None = None) -> int:
    """Delete uploads never sent within a day (of ``owner``, or everyone's); their files go
    with them (``chat.signals``). Returns how many."""
    stale = stale_unsent(now)
    if owner is not None:
        stale = stale.filter(owner=owner)
    return stale.delete()[1].get(Attachment._meta.label, 0)


def delete_files(names: Iterable[str]) -> None:
    """Remove stored files that no attachment row names any more (a branch's copy of a
    message shares its files). Failures are logged: the row is gone either way."""
    for name in names:
        if not name:
            continue
        if (
            Attachment.objects.filter(file=name).exists()
            or Attachment.objects.filter(thumbnail=name).exists()
        ):
            continue
        try:
            default_storage.delete(name)
        except Exception:  # storage unreachable: an orphan file, not a failed delete
            log.exception("could not delete stored file %s", name)
