"""Files join the message they were sent with: only the sender's own files, not yet sent, and
uploaded for this chat (or for a new chat); anything else refuses the whole message, which
stays in the box. A new version of a message (regenerate, edit) carries the same files: new
rows naming the same stored files (deleted with the last row that names them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat.models import Attachment, Thread, Turn
from chat.services.attachments import limits
from chat.services.attachments.errors import UploadRefused
from chat.services.refusals import TurnRejected

UNAVAILABLE = gettext_lazy(
    "One of the attached files is no longer available (removed, already sent, or not yours). "
    "Remove it and attach it again."
)


def parse_ids(raw: object) -> list[uuid.UUID]:
    """The attachment ids of a send (one string or a list of them, as forms send them).
    Raises TurnRejected."""
    if raw in (None, ""):
        return []
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TurnRejected(str(UNAVAILABLE))
    try:
        ids = list(dict.fromkeys(uuid.UUID(value) for value in values if value))
    except ValueError:
        raise TurnRejected(str(UNAVAILABLE)) from None
    try:
        limits.check_files_per_message(len(ids))
    except UploadRefused as exc:
        raise TurnRejected(str(exc)) from None
    return ids


def refuse_in_comparison(raw: object) -> None:
    """Comparing models sends text only: files with it are refused, not silently dropped."""
    if parse_ids(raw):
        raise TurnRejected(
            _("Comparing models does not take attached files: remove them or untick the models.")
        )


def link_to_turn(
    user, thread: Thread, turn: Turn, ids: list[uuid.UUID], *, new_chat: bool
) -> list[Attachment]:
    """Attach the user's unsent files ``ids`` to ``turn`` (in the caller's transaction), in
    the order given. ``new_chat``: the files were uploaded on the new-chat page. Raises
    TurnRejected (the caller's transaction then creates nothing). Returns them in order."""
    if not ids:
        return []
    files = Attachment.objects.select_for_update().filter(
        pk__in=ids, owner=user, turn__isnull=True, from_model=False
    )
    files = files.filter(thread__isnull=True) if new_chat else files.filter(thread=thread)
    found = {attachment.pk: attachment for attachment in files}
    if len(found) != len(ids):
        raise TurnRejected(str(UNAVAILABLE))
    for position, pk in enumerate(ids):
        attachment = found[pk]
        attachment.turn, attachment.thread, attachment.position = turn, thread, position
    Attachment.objects.bulk_update(found.values(), ["turn", "thread", "position"])
    return [found[pk] for pk in ids]


def copy_to_turn(source_turn_id: int, turn: Turn) -> list[Attachment]:
    """The user's files of ``source_turn_id`` also on ``turn`` (a new version of it)."""
    copies = [
        Attachment(
            id=uuid.uuid4(),
            **{
                field: getattr(original, field)
                for field in (
                    "owner_id",
                    "thread_id",
                    "kind",
                    "name",
                    "content_type",
                    "size",
                    "sha256",
                    "width",
                    "height",
                    "file",
                    "thumbnail",
                    "position",
                    "created_at",
                )
            },
            turn=turn,
        )
        for original in Attachment.objects.filter(turn_id=source_turn_id, from_model=False)
    ]
    return Attachment.objects.bulk_create(copies)


def of_turns(turn_ids: Iterable[int]) -> dict[int, list[Attachment]]:
    """Each turn's files (the user's and the model's), in order: one query."""
    by_turn: dict[int, list[Attachment]] = {}
    for attachment in Attachment.objects.filter(turn_id__in=list(turn_ids)).order_by(
        "turn_id", "position", "created_at"
    ):
        by_turn.setdefault(attachment.turn_id, []).append(attachment)
    return by_turn
