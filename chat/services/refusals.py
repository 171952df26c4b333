"""Why something a user asked for is refused: the exception's text is shown to them."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from chat.upstream.events import Failed


class TurnRejected(Exception):
    """A message that cannot be sent; the text is shown to the user."""


class ReadOnly(TurnRejected):
    """The user may read this thread but not write in it."""

    def __init__(
        self, message: str = "This chat is shared with you read-only: you cannot change it."
    ) -> None:
        super().__init__(message)


# What gateways say when a model cannot read an image or file it was sent (OpenAI: "Invalid
# content type. image_url is only supported by certain models."; the demo gateway's code).
_MEDIA_CODES = frozenset({"unsupported_content", "invalid_image_format", "image_not_supported"})
_MEDIA_WORDS = re.compile(r"\b(image|images|image_url|vision|file|input_file|input_image)\b", re.I)
_REFUSAL_WORDS = re.compile(r"\b(support|supported|only|cannot|not allowed|invalid)\b", re.I)


def explain_upstream_failure(failure: Failed) -> str:
    """The text a failed turn shows: the gateway's words, with a plain explanation first when
    the model refused an image or file it cannot read."""
    if failure.status_code != 400:
        return failure.message
    refused_media = failure.code in _MEDIA_CODES or (
        _MEDIA_WORDS.search(failure.message) and _REFUSAL_WORDS.search(failure.message)
    )
    if not refused_media:
        return failure.message
    return _(
        "This model cannot read the images or files attached to this message. Send it without "
        "them, or choose a model that reads them. (%(details)s)"
    ) % {"details": failure.message}
