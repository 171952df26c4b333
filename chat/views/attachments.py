"""Files attached to messages: upload (a chip for the composer), remove before sending, and
serve (the thread's access rules, ``Content-Disposition``, ``nosniff``, streamed from
storage). Sync views: Django runs them in its thread pool, so reading, hashing and decoding an
upload never blocks the event loop."""

from __future__ import annotations

import uuid
from urllib.parse import unquote

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from chat.request_ids import parse_id
from chat.services.attachments import access, limits, store
from chat.services.attachments.errors import UploadRefused
from chat.services.attachments.sniffing import clean_name

# Room for the multipart envelope around a file of MAX_UPLOAD_BYTES.
_ENVELOPE_BYTES = 64 * 1024


@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    """One file for the user's next message in ``thread`` (empty: a new chat). Answers 200
    with a chip either way: stored, or refused saying why (a 4xx is a console error)."""
    name = ""
    try:
        # Refused before the body is read: an oversized upload is never spooled to disk.
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > settings.MAX_UPLOAD_BYTES + _ENVELOPE_BYTES:
            limits.check_file_size(declared)
        upload = request.FILES.get("file")
        if upload is None:
            raise UploadRefused(_("No file arrived. Try again."))
        name = clean_name(upload.name or "")
        raw_thread = request.POST.get("thread", "")
        thread_id = parse_id(raw_thread) if raw_thread else None
        if raw_thread and thread_id is None:
            raise UploadRefused(_("This chat no longer exists."))
        attachment = store.store_upload(request.user, upload, thread_id=thread_id)
    except UploadRefused as exc:
        name = name or clean_name(unquote(request.headers.get("X-File-Name", "")))
        return render(request, "chat/attachments.html#refused", {"name": name, "reason": exc})
    return render(request, "chat/attachments.html#chip", {"attachment": attachment})


@require_POST
def remove(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponse:
    """Take an unsent file off the message (its file is deleted); empty answer either way."""
    store.remove_unsent(request.user, attachment_id)
    return HttpResponse("")


def _serve(request: HttpRequest, attachment_id: uuid.UUID, *, thumbnail: bool) -> FileResponse:
    attachment = access.readable_attachment(request.user, attachment_id)
    field = attachment and (attachment.thumbnail if thumbnail else attachment.file)
    if not field:
        raise Http404("No such file.")
    if thumbnail:
        content_type, inline = "image/webp", True
    else:
        content_type, inline = attachment.content_type, access.served_inline(attachment)
    if content_type.startswith("text/") or content_type == "application/json":
        content_type += "; charset=utf-8"
    response = FileResponse(
        field.open("rb"),
        content_type=content_type,
        as_attachment=not inline,
        filename=attachment.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
def serve(request: HttpRequest, attachment_id: uuid.UUID) -> FileResponse:
    return _serve(request, attachment_id, thumbnail=False)


@require_GET
def serve_thumbnail(request: HttpRequest, attachment_id: uuid.UUID) -> FileResponse:
    return _serve(request, attachment_id, thumbnail=True)
