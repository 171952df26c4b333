"""What one request to the gateway says, in neutral terms: the API, the conversation, the tools
offered, the results of the tools called so far, and the parameters.

``chat.upstream.encoding.encode`` turns a ``Request`` into the body of either API; each API's
module (``responses_api``, ``chat_completions``) holds all of its own wire format, so a new kind
of content (an image, a file, audio) is one field here and one encoder per API.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

# A tool choice that forces one function is stored as "function:<name>".
FUNCTION_PREFIX = "function:"
# Spoken answers (Chat Completions ``modalities`` + ``audio``): the stored values and the voices
# and formats OpenAI-compatible gateways offer.
TEXT_ONLY = "text"
TEXT_AND_AUDIO = "text_audio"
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer")
AUDIO_FORMATS = ("wav", "mp3", "flac", "opus", "pcm16")


class Api(StrEnum):
    """The gateway API a thread talks to (stored on providers, presets, threads and turns)."""

    RESPONSES = "responses"
    CHAT = "chat"

    @property
    def label(self) -> str:
        return _API_LABELS[self]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(value, label) pairs, for model fields and forms."""
        return [(api.value, api.label) for api in cls]

    @classmethod
    def values(cls) -> list[str]:
        return [api.value for api in cls]


_API_LABELS = {
    Api.RESPONSES: "Responses (/v1/responses)",
    Api.CHAT: "Chat Completions (/v1/chat/completions)",
}


@dataclass(frozen=True)
class MessageFile:
    """A file sent with a user message: its bytes, their type (sniffed, never the browser's
    claim) and the name the user gave it. ``text`` is a document's text, for the APIs and models
    that take documents only as text."""

    name: str
    media_type: str
    data: bytes
    text: str | None = None

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    @property
    def data_url(self) -> str:
        """The bytes as a base64 ``data:`` URL, the one form both APIs take inline."""
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class Message:
    """One message of the conversation (``role``: system, user or assistant)."""

    role: str
    text: str
    files: tuple[MessageFile, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    """A function tool offered to the model."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolImage:
    """An image a tool gave back (base64 ``data``), for the APIs that take it as input."""

    mime: str
    data: str


@dataclass(frozen=True)
class ToolResult:
    """One tool call the model made, and what it gave back."""

    call_id: str
    name: str
    arguments: str
    output: str
    images: tuple[ToolImage, ...] = ()  # from MCP tools; the output text mentions them


@dataclass(frozen=True)
class Parameters:
    """The request parameters set for this request (None: not set, the gateway's default).

    Only the parameters of the request's API are set here (the caller filters them); each API's
    encoder maps them to its own fields."""

    instructions: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    max_output_tokens: int | None = None
    max_tokens_field: str | None = None  # Chat Completions: "max_tokens" on legacy gateways
    truncation: str | None = None
    reasoning_effort: str | None = None
    reasoning_summary: str | None = None
    stop: list[str] | None = None
    response_format: str | None = None  # text, json_object, json_schema
    response_schema: dict[str, Any] | None = None
    n: int | None = None
    modalities: str | None = None  # TEXT_ONLY or TEXT_AND_AUDIO (Chat Completions)
    audio_voice: str | None = None
    audio_format: str | None = None
    tool_choice: str | None = None  # auto, none, required, or FUNCTION_PREFIX + a tool's name
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    def forced_function(self) -> str | None:
        """The tool's name when the tool choice forces one function."""
        choice = self.tool_choice
        if isinstance(choice, str) and choice.startswith(FUNCTION_PREFIX):
            return choice[len(FUNCTION_PREFIX) :]
        return None


# Parameters both APIs send under their own name, unchanged.
SAME_NAME = (
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logit_bias",
    "truncation",
    "stop",
    "n",
    "parallel_tool_calls",
    "store",
    "metadata",
)


@dataclass(frozen=True)
class Request:
    """One request of a turn.

    ``history`` is the whole conversation, ending with the new user message. ``continue_from``
    is the response the gateway holds (Responses API): then only what is new is sent.
    ``tool_steps`` are the results of the turn's tool calls so far, one list per step; with
    them, the request hands the last step's results back to the model."""

    api: Api
    model: str
    history: list[Message]
    parameters: Parameters = field(default_factory=Parameters)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_steps: list[list[ToolResult]] = field(default_factory=list)
    continue_from: str | None = None
    # Chat Completions: send documents as the provider's "file" part (its model list says the
    # model takes files) instead of as their text.
    file_parts: bool = False
    user: str | None = None  # a pseudonym of the account, for the gateway's abuse monitoring

    @property
    def is_first(self) -> bool:
        """The turn's first request (no tool results handed back yet)."""
        return not self.tool_steps


def common_fields(request: Request) -> dict[str, Any]:
    """The fields both APIs name and shape the same way: same-name parameters, the tool choice
    and parallel calls kept only when tools are offered, and the user."""
    params = request.parameters
    body: dict[str, Any] = {}
    for name in SAME_NAME:
        value = getattr(params, name)
        if value is not None and value != [] and value != {}:
            body[name] = value
    offered = {tool.name for tool in request.tools}
    if not offered:
        # Gateways reject a tool choice (or parallel calls) with no tools.
        body.pop("parallel_tool_calls", None)
    if request.user is not None:
        body["user"] = request.user
    return body


def tool_choice_for(request: Request) -> str | None:
    """The tool choice to send, or None: only with tools offered, never a forced function that
    is no longer offered, and a forced choice (required, or a named function) only in the first
    request: it would force a call at every step and the loop would never end."""
    choice = request.parameters.tool_choice
    if not choice or not request.tools:
        return None
    forced = request.parameters.forced_function()
    if forced is not None and forced not in {tool.name for tool in request.tools}:
        return None
    if not request.is_first and choice not in ("auto", "none"):
        return None
    return choice
