"""A conversation's files as the upstream gets them (``chat.upstream.request.MessageFile``):
their bytes read from storage, a document's text alongside, images larger than
``UPSTREAM_IMAGE_MAX_SIDE`` shrunk to fit. Blocking (storage, Pillow): run off the event loop."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from chat.models import Attachment
from chat.services.attachments import images, linking, sniffing
from chat.upstream.request import MessageFile


def message_file(attachment: Attachment) -> MessageFile:
    with attachment.file.open("rb") as stored:
        data = stored.read()
    media_type = attachment.content_type
    if attachment.kind == Attachment.Kind.IMAGE:
        data, media_type = images.fit_for_upstream(
            data, media_type, settings.UPSTREAM_IMAGE_MAX_SIDE
        )
    text = (
        sniffing.document_text(media_type, data)
        if attachment.kind == Attachment.Kind.DOCUMENT
        else None
    )
    return MessageFile(name=attachment.name, media_type=media_type, data=data, text=text)


def sent_files(turn_ids: Iterable[int]) -> dict[int, list[Attachment]]:
    """The files each turn's user message was sent with (not the model's own audio): the rows
    only (a query, no storage)."""
    return {
        turn_id: [a for a in attachments if not a.from_model]
        for turn_id, attachments in linking.of_turns(turn_ids).items()
    }


def read_files(rows: dict[int, list[Attachment]]) -> dict[int, tuple[MessageFile, ...]]:
    """``sent_files``' rows with their bytes (storage reads, image shrinking: no query)."""
    return {turn_id: tuple(message_file(a) for a in files) for turn_id, files in rows.items()}


async def load(turn_ids: Iterable[int]) -> dict[int, tuple[MessageFile, ...]]:
    """From the event loop: the query in the database thread, the reading in another, so a
    large file never holds up the loop or the database thread."""
    import asyncio

    from channels.db import database_sync_to_async

    rows = await database_sync_to_async(sent_files)(list(turn_ids))
    if not rows:
        return {}
    return await asyncio.to_thread(read_files, rows)
