"""Reading what a browser sends over the thread websocket, before anything acts on it.

A frame is untrusted: its size is checked before it is parsed, its nesting while it is parsed
(a deeply nested frame raised RecursionError out of the consumer), and its fields' types after.
Every refusal is an ``ActionRefused`` whose message is shown in the composer; the socket stays
open. A frame may carry a ``request_id`` (the composer's): the reply names it, accepted or refused,
so the page clears the typed text only once the server took it (``fragments.action_receipt``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat.request_ids import parse_id
from chat.services.json_schema import depth_exceeds

ACTIONS = frozenset(
    {"send", "stop", "retry", "regenerate", "edit", "tool_result", "tool_reject", "switch"}
) | {"compare"}  # compare models: chat/services/compare.py
# What the page's forms send: a flat object (htmx adds a "HEADERS" object). Deeper is refused.
MAX_NESTING = 8
# Text fields of an action, and the id field.
_TEXT_FIELDS = ("action", "message", "result", "call_id", "request_id")
# What a request id may be: the page makes short random ones; anything else is not echoed.
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A frame carries at most one message or tool result; JSON escaping can make each character
# six (\uXXXX), plus the form's other fields.
_ESCAPE_FACTOR = 6
_FRAME_OVERHEAD = 16_384

UNREADABLE = gettext_lazy("The message could not be read. Reload the page.")
NOT_UNDERSTOOD = gettext_lazy("That request was not understood.")


class ActionRefused(ValueError):
    """A frame that is not a usable action; the message is for the person who sent it, and
    ``request_id`` names the request when the frame could be read that far."""

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id


def request_id_of(data: object) -> str:
    """The ``request_id`` a frame carries, if it is one the page could have made; else ""."""
    value = data.get("request_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and _REQUEST_ID.fullmatch(value) else ""


def max_frame_chars(max_message_chars: int) -> int:
    return _ESCAPE_FACTOR * max_message_chars + _FRAME_OVERHEAD


def parse_action(text: str | bytes | None, max_message_chars: int) -> dict[str, Any]:
    """The action in a websocket frame: a JSON object whose ``action`` is one of ``ACTIONS``
    (``send`` when absent), text fields that are strings, and a ``turn_id`` that is an id or
    empty. Raises ActionRefused."""
    if isinstance(text, bytes):
        raise ActionRefused(UNREADABLE)  # the page only sends text frames
    text = text or ""
    if len(text) > max_frame_chars(max_message_chars):
        raise ActionRefused(
            _("That message is too long (the limit is %(limit)s characters).")
            % {"limit": f"{max_message_chars:,}"}
        )
    try:
        data = json.loads(text)
    except RecursionError:
        raise ActionRefused(_("That request is nested too deeply to be read.")) from None
    except ValueError:
        raise ActionRefused(UNREADABLE) from None
    if not isinstance(data, dict):
        raise ActionRefused(UNREADABLE)
    request_id = request_id_of(data)
    # Counting brackets is C-speed; only a frame with many of them is walked.
    if text.count("{") + text.count("[") > MAX_NESTING and depth_exceeds(data, MAX_NESTING):
        raise ActionRefused(_("That request is nested too deeply to be read."), request_id)
    for name in _TEXT_FIELDS:
        if name in data and not isinstance(data[name], str):
            raise ActionRefused(NOT_UNDERSTOOD, request_id)
    data["action"] = data.get("action") or "send"
    if data["action"] not in ACTIONS:
        raise ActionRefused(NOT_UNDERSTOOD, request_id)
    turn_id = data.get("turn_id")
    if turn_id not in (None, "") and parse_id(turn_id) is None:
        raise ActionRefused(_("This message no longer exists."), request_id)
    return data
