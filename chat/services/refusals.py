"""Why something a user asked for is refused: the exception's text is shown to them."""

from __future__ import annotations

from django.utils.translation import gettext as _


class TurnRejected(Exception):
    """A message that cannot be sent; the text is shown to the user."""


class ReadOnly(TurnRejected):
    """The user may read this thread but not write in it."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message or _("This chat is shared with you read-only: you cannot change it.")
        )
