"""What an answer brings besides choice 0's text: the other choices (Chat Completions ``n > 1``),
kept as sibling turns of the turn, and spoken answers (``modalities`` with audio), kept as audio
attachments of their turn.

Choice 0 streams live into the turn; the other choices are collected while it streams and
appear when the answer ends, as siblings (same parent and message, ``choice_index`` set) shown
with the branch switcher (1/n). The usage the gateway reported covers every choice: each stored
choice gets an even share, so the records still add up to what was spent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import struct
from dataclasses import dataclass, field, fields
from typing import Any

from django.core.files.base import ContentFile

from chat.models import TURN_USAGE_FIELDS, Attachment, Thread, Turn
from chat.services import usage
from chat.services.turns.store import usage_fields
from chat.upstream import events
from chat.upstream.request import TEXT_AND_AUDIO

log = logging.getLogger(__name__)

# (file extension, content type) of each audio format; pcm16 (raw samples) is stored as WAV.
_AUDIO_TYPES = {
    "wav": ("wav", "audio/wav"),
    "mp3": ("mp3", "audio/mpeg"),
    "flac": ("flac", "audio/flac"),
    "opus": ("ogg", "audio/ogg"),
    "pcm16": ("wav", "audio/wav"),
}
PCM16_SAMPLE_RATE = 24_000  # what OpenAI-compatible gateways send pcm16 at (16-bit, mono)
# A cut or failed answer keeps only choice 0's text, like before; complete ones keep everything.
_ANSWERED = frozenset({Turn.Status.COMPLETED, Turn.Status.INCOMPLETE})


@dataclass
class OtherOutput:
    """Collected from the stream: the text of choices 1..n-1 and every choice's audio bytes."""

    texts: dict[int, list[str]] = field(default_factory=dict)
    audio: dict[int, bytearray] = field(default_factory=dict)

    def add(self, event: events.ChoiceDelta | events.AudioDelta) -> None:
        if isinstance(event, events.ChoiceDelta):
            self.texts.setdefault(event.choice, []).append(event.text)
            return
        try:
            piece = base64.b64decode(event.data, validate=True)
        except (binascii.Error, ValueError):
            log.warning("skipped a piece of spoken answer that is not base64")
            return
        self.audio.setdefault(event.choice, bytearray()).extend(piece)

    def text(self, choice: int) -> str:
        return "".join(self.texts.get(choice, ()))

    def other_choices(self) -> list[int]:
        """The choices after the first that said something, in order."""
        found = set(self.texts) | set(self.audio)
        return sorted(c for c in found if c > 0 and (self.text(c) or self.audio.get(c)))


def usage_shares(total: events.Usage, count: int) -> list[events.Usage]:
    """``total`` split into ``count`` even shares that add up to it exactly."""
    values = [getattr(total, f.name) for f in fields(total)]
    columns = [[v // count + (1 if i < v % count else 0) for i in range(count)] for v in values]
    return [events.Usage(*(column[i] for column in columns)) for i in range(count)]


def wav_of_pcm16(samples: bytes) -> bytes:
    """Raw 16-bit mono samples wrapped in a WAV header, so that browsers play them."""
    rate = PCM16_SAMPLE_RATE
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 36 + len(samples), b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16),
        *(b"data", len(samples)),
    )
    return header + samples


def audio_file(choice: int, data: bytes, audio_format: str) -> Attachment:
    """A spoken answer written to the default storage, as an attachment from the model not saved
    yet (its row is written with the turn's end; the bytes before, outside that transaction)."""
    if audio_format == "pcm16":
        data = wav_of_pcm16(data)
    extension, content_type = _AUDIO_TYPES.get(audio_format, _AUDIO_TYPES["wav"])
    attachment = Attachment(
        kind=Attachment.Kind.AUDIO,
        from_model=True,
        name=f"spoken-answer-{choice + 1}.{extension}",
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    attachment.file.save(attachment.name, ContentFile(data), save=False)
    return attachment


@dataclass
class Extras:
    """The end of a turn's other output: its audio written first (``write_audio``, off the event
    loop), then its rows stored with the turn's end (``store``, inside that transaction)."""

    output: OtherOutput
    shares: list[events.Usage]
    audio_format: str
    audio: dict[int, Attachment] = field(default_factory=dict)  # written, rows not saved yet

    @property
    def adds_turns(self) -> bool:
        return bool(self.output.other_choices())

    @classmethod
    def of(cls, turn: Turn, output: OtherOutput, ending: dict[str, Any]) -> Extras | None:
        """What to store besides the turn's ``ending`` fields, or None; with other choices,
        ``ending`` keeps only choice 0's share of the usage."""
        if ending["status"] not in _ANSWERED or not (output.other_choices() or output.audio):
            return None
        total = events.Usage(**{name: ending[name] for name in TURN_USAGE_FIELDS})
        shares = usage_shares(total, 1 + len(output.other_choices()))
        ending.update(usage_fields(shares[0]))
        audio_format = (turn.params or {}).get("audio_format") or "wav"
        return cls(output, shares, audio_format)

    def write_audio(self) -> None:
        kept = {0, *self.output.other_choices()}
        for choice, data in self.output.audio.items():
            if data and choice in kept and choice not in self.audio:
                self.audio[choice] = audio_file(choice, bytes(data), self.audio_format)

    def store(self, turn: Turn) -> None:
        owner_id = Thread.objects.values_list("owner_id", flat=True).get(pk=turn.thread_id)
        self._attach_audio(turn, 0, owner_id)
        for share, choice in zip(self.shares[1:], self.output.other_choices(), strict=True):
            sibling = Turn.objects.create(
                thread_id=turn.thread_id,
                parent_id=turn.parent_id,
                author_id=turn.author_id,
                user_text=turn.user_text,
                output_text=self.output.text(choice),
                status=turn.status,
                api=turn.api,
                provider_id=turn.provider_id,
                model=turn.model,
                params=turn.params,
                choice_index=choice,
                duration_ms=turn.duration_ms,
                finished_at=turn.finished_at,
                **usage_fields(share),
            )
            usage.record_turn(sibling)
            self._attach_audio(sibling, choice, owner_id)

    def _attach_audio(self, turn: Turn, choice: int, owner_id: int) -> None:
        attachment = self.audio.get(choice)
        if attachment is not None:
            attachment.owner_id = owner_id
            attachment.thread_id = turn.thread_id
            attachment.turn = turn
            attachment.save()  # an insert (also when a retried transaction inserts it again)


def spoken_answers(turn: Turn) -> list[Attachment]:
    """The turn's spoken answers, for its player; no query unless the turn asked for audio."""
    if (turn.params or {}).get("modalities") != TEXT_AND_AUDIO:
        return []
    return list(turn.attachments.filter(from_model=True, kind=Attachment.Kind.AUDIO))
