"""The ``spoken_answers`` filter: a turn's audio answers (``chat.services.turns.choices``)."""

from __future__ import annotations

from django import template

from chat.models import Attachment, Turn
from chat.services.turns import choices

register = template.Library()


@register.filter
def spoken_answers(turn: Turn) -> list[Attachment]:
    """The turn's spoken answers, for its player (no query unless the turn asked for audio)."""
    return choices.spoken_answers(turn)
