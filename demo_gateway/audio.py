"""Spoken answers (Chat Completions ``modalities: ["text", "audio"]``): a short tone as a valid
WAV file (or raw 16-bit PCM), one pitch per choice so that choices differ, and its token count."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from demo_gateway.errors import invalid_request, missing_parameter

SAMPLE_RATE = 24000  # 16-bit mono, as OpenAI sends pcm16
DURATION_MS = 400
AUDIO_TOKENS = DURATION_MS // 20  # one token per 20 ms of speech, per choice
FORMATS = ("wav", "pcm16")
_MODALITIES = ("text", "audio")


@dataclass(frozen=True, slots=True)
class AudioRequest:
    voice: str
    format: str


def requested_audio(body: dict[str, Any]) -> AudioRequest | None:
    """The audio output asked for, or None for a text-only answer; bad values are a 400."""
    modalities = body.get("modalities")
    if modalities is None:
        return None
    if not isinstance(modalities, list) or any(m not in _MODALITIES for m in modalities):
        raise invalid_request(
            "Invalid value for 'modalities': expected a list of 'text' and 'audio'.",
            "modalities",
            "invalid_value",
        )
    if "audio" not in modalities:
        return None
    audio = body.get("audio")
    if not isinstance(audio, dict):
        raise missing_parameter("audio")
    voice, format_ = audio.get("voice"), audio.get("format")
    if not isinstance(voice, str) or not voice:
        raise missing_parameter("audio.voice")
    if format_ not in FORMATS:
        raise invalid_request(
            f"Invalid value for 'audio.format': the demo gateway produces {' or '.join(FORMATS)}.",
            "audio.format",
            "invalid_value",
        )
    return AudioRequest(voice, format_)


def tone(choice: int, format_: str) -> bytes:
    """A 0.4 s tone, pitched by choice (440 Hz, 550 Hz, …), as ``format_`` bytes."""
    frequency = 440 + 110 * choice
    count = SAMPLE_RATE * DURATION_MS // 1000
    samples = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)))
        for i in range(count)
    )
    if format_ == "pcm16":
        return samples
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(samples),
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        SAMPLE_RATE,
        SAMPLE_RATE * 2,
        2,
        16,
        b"data",
        len(samples),
    )
    return header + samples
