"""Normalized upstream events.

Both upstream APIs (Responses and Chat Completions) are translated into this one stream of
events, so nothing above ``chat.upstream`` knows which API or which usage schema was spoken.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any


def text_or_none(value: Any) -> str | None:
    """A field of an upstream payload that should be a string; anything else is "not given"."""
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Started:
    """The upstream accepted the request (Responses: ``response.created``)."""

    response_id: str | None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ChoiceDelta:
    """Text of a choice after the first (``n > 1``): its answer, or a spoken answer's transcript.
    Choice 0's text is a :class:`TextDelta`."""

    choice: int
    text: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """A piece of a spoken answer (``modalities`` with audio): base64 ``data`` of ``choice``.
    Each piece decodes on its own; the answer is the pieces' bytes in order. Its transcript
    comes as the choice's text."""

    data: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call's arguments while they stream in."""

    index: int
    call_id: str | None
    name: str | None
    arguments_delta: str


@dataclass(frozen=True, slots=True)
class ToolCallDone:
    index: int
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    image_tokens: int = 0  # input tokens spent on images (part of input_tokens)
    audio_tokens: int = 0  # tokens of audio heard and spoken (part of input and output)

    def __add__(self, other: Usage) -> Usage:
        """Both counts together (a tool loop's steps each report their own)."""
        return Usage(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @classmethod
    def from_payload(cls, payload: dict[str, Any] | None) -> Usage:
        """Read either usage schema: ``input_tokens…`` (Responses) or ``prompt_tokens…`` (Chat)."""
        if not isinstance(payload, dict):
            return cls()

        def number(value: Any) -> int:
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        def details(*keys: str) -> dict[str, Any]:
            for key in keys:
                if isinstance(payload.get(key), dict):
                    return payload[key]
            return {}

        input_tokens = number(payload.get("input_tokens", payload.get("prompt_tokens")))
        output_tokens = number(payload.get("output_tokens", payload.get("completion_tokens")))
        total = number(payload.get("total_tokens")) or input_tokens + output_tokens
        inputs = details("input_tokens_details", "prompt_tokens_details")
        outputs = details("output_tokens_details", "completion_tokens_details")
        return cls(
            input_tokens,
            output_tokens,
            total,
            number(inputs.get("cached_tokens")),
            number(outputs.get("reasoning_tokens")),
            number(inputs.get("image_tokens")),
            number(inputs.get("audio_tokens")) + number(outputs.get("audio_tokens")),
        )


@dataclass(frozen=True, slots=True)
class Completed:
    """The answer ended: ``completed``, or ``incomplete`` with ``reason`` saying why."""

    response_id: str | None
    status: str = "completed"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The request or stream failed; ``message`` is fit to show a user.

    ``kind`` is one of ``http`` (upstream answered 4xx/5xx), ``timeout``, ``connection``,
    ``protocol`` (malformed stream or cut before it ended) or ``upstream`` (a failure event
    inside an otherwise healthy stream). ``code`` is the upstream's error code when it gave one.
    """

    message: str
    kind: str
    status_code: int | None = None
    code: str | None = None

    @property
    def unknown_previous_response(self) -> bool:
        """True when the upstream no longer knows the ``previous_response_id`` we sent."""
        if self.code == "previous_response_not_found":
            return True
        return self.status_code in (400, 404) and "previous_response" in self.message.lower()


Event = (
    Started
    | TextDelta
    | ReasoningDelta
    | ChoiceDelta
    | AudioDelta
    | ToolCallDelta
    | ToolCallDone
    | Usage
    | Completed
    | Failed
)
