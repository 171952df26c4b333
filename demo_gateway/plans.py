"""One planned answer: every choice's text, reasoning, tool calls and usage, decided up front."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from demo_gateway.answers import (
    asks_for_title,
    compose_answer,
    compose_reasoning,
    compose_title,
    compose_tool_report,
    filler_paragraphs,
    split_chunks,
    tokens_of,
    tool_reasoning,
)
from demo_gateway.audio import AUDIO_TOKENS, AudioRequest, tone
from demo_gateway.conversation import Message, count_words, message_words, text_of
from demo_gateway.directives import Directives, parse_directives
from demo_gateway.errors import invalid_request
from demo_gateway.media import IMAGE_TOKENS
from demo_gateway.tools import call_names, tool_arguments

MODELS = ("demo-chat", "demo-reasoner", "demo-text", "gpt-5.4", "gpt-5.4-mini")
REASONING_MODELS = frozenset({"demo-reasoner"})
# What each model takes in and gives back, as /v1/models lists it (default: everything).
_TEXT_ONLY = {"input_modalities": ["text"], "output_modalities": ["text"]}
_FULL = {"input_modalities": ["text", "image", "file"], "output_modalities": ["text", "audio"]}
MODEL_MODALITIES = {"demo-text": _TEXT_ONLY}


def modalities_of(model: str) -> dict[str, list[str]]:
    return MODEL_MODALITIES.get(model, _FULL)


def check_modalities(model: str, conversation: list[Message], audio: bool) -> None:
    """A 400 like OpenAI's when the model cannot take an image or file sent, or cannot speak."""
    inputs = modalities_of(model)["input_modalities"]
    for message in conversation:
        for attachment in message.get("files") or ():
            if attachment["kind"] not in inputs:
                raise invalid_request(
                    f"Invalid content: the model '{model}' does not support {attachment['kind']} "
                    "input.",
                    attachment["param"],
                    "unsupported_content",
                )
    if audio and "audio" not in modalities_of(model)["output_modalities"]:
        raise invalid_request(
            f"The model '{model}' does not support audio output.", "modalities", "invalid_value"
        )


_ARGUMENT_PIECES = 4  # a tool call's arguments stream in about this many pieces


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: str
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    item_id: str = field(default_factory=lambda: f"fc_{uuid.uuid4().hex}")

    @property
    def pieces(self) -> list[str]:
        """The arguments in the pieces they stream in."""
        size = max(1, -(-len(self.arguments) // _ARGUMENT_PIECES))
        return [self.arguments[i : i + size] for i in range(0, len(self.arguments), size)]

    @property
    def tokens(self) -> int:
        return 1 + len(self.pieces)  # one for the name, one per streamed piece


@dataclass(slots=True)
class Choice:
    """One answer: reasoning, then either text or tool calls."""

    reasoning_chunks: list[str]
    answer_chunks: list[str]
    calls: list[ToolCall]
    incomplete: bool = False
    output_tokens: int = 0  # reasoning, answer and call arguments, one word per token
    audio: bytes | None = None  # the spoken answer (its transcript is the answer text)

    @property
    def answer(self) -> str:
        return "".join(self.answer_chunks)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_chunks)

    @property
    def finish_reason(self) -> str:
        if self.calls:
            return "tool_calls"
        return "length" if self.incomplete else "stop"

    def as_message(self) -> Message:
        """This answer as a conversation message, to remember it."""
        message: Message = {"role": "assistant", "content": self.answer}
        if self.calls:
            message["tool_calls"] = [
                {"call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in self.calls
            ]
        return message


@dataclass(slots=True)
class Plan:
    """Everything about one response, decided before the first byte is sent. The Responses API
    has one choice; Chat Completions has ``n``."""

    model: str
    directives: Directives
    conversation: list[Message]
    choices: list[Choice]
    usage: dict[str, Any]
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def first(self) -> Choice:
        return self.choices[0]

    @property
    def answer_chunks(self) -> list[str]:
        return self.first.answer_chunks

    @property
    def reasoning_chunks(self) -> list[str]:
        return self.first.reasoning_chunks

    @property
    def calls(self) -> list[ToolCall]:
        return self.first.calls

    @property
    def incomplete(self) -> bool:
        return self.first.incomplete

    @property
    def answer(self) -> str:
        return self.first.answer

    @property
    def reasoning(self) -> str:
        return self.first.reasoning


@dataclass(frozen=True, slots=True)
class _Counts:
    input_tokens: int
    cached: int
    output: int
    reasoning: int
    image: int = 0  # input tokens spent on images (part of input_tokens)
    audio: int = 0  # output tokens spent on audio (part of output)


def _usage(schema: str, counts: _Counts) -> dict:
    total = counts.input_tokens + counts.output
    if schema == "chat":
        return {
            "prompt_tokens": counts.input_tokens,
            "completion_tokens": counts.output,
            "total_tokens": total,
            "prompt_tokens_details": {
                "cached_tokens": counts.cached,
                "audio_tokens": 0,
                "image_tokens": counts.image,
            },
            "completion_tokens_details": {
                "reasoning_tokens": counts.reasoning,
                "audio_tokens": counts.audio,
            },
        }
    return {
        "input_tokens": counts.input_tokens,
        "input_tokens_details": {"cached_tokens": counts.cached, "image_tokens": counts.image},
        "output_tokens": counts.output,
        "output_tokens_details": {"reasoning_tokens": counts.reasoning},
        "total_tokens": total,
    }


def _attachment_lines(message: Message | None) -> str:
    """What the gateway saw of the message's images and files, one checkable line each."""
    lines = [a["description"] for a in (message or {}).get("files") or ()]
    return "\n".join(lines) + "\n\n" if lines else ""


def make_plan(
    *,
    model: str,
    history: list[Message],
    new_messages: list[Message],
    instructions: str,
    max_tokens: Any,
    default_usage: str,
    words_per_chunk: int,
    tools: dict[str, dict[str, Any]] | None = None,
    tool_choice: tuple[str, str] = ("auto", ""),
    parallel_tool_calls: bool = True,
    n: int = 1,
    audio: AudioRequest | None = None,
) -> Plan:
    conversation = history + new_messages
    user_positions = [i for i, m in enumerate(conversation) if m.get("role") == "user"]
    last_user = user_positions[-1] if user_positions else -1
    directives, user_text = parse_directives(
        text_of(conversation[last_user]["content"]) if user_positions else ""
    )
    if directives.fault_model not in (None, model):
        directives.fault = None  # the fault was meant for another model (fallback tests)
    turn = len(user_positions)
    results = [m for m in conversation[last_user + 1 :] if m.get("role") == "tool"]
    tools = tools or {}
    names = call_names(
        directives, tools, tool_choice, answered=bool(results), parallel=parallel_tool_calls
    )
    reasoning_tokens: list[str] = []
    if directives.reasoning or model in REASONING_MODELS:
        reasoning_tokens = tokens_of(_reasoning_text(names, results, user_text, turn))
    system = [m for m in conversation if m.get("role") in ("system", "developer")]
    if asks_for_title(" ".join([instructions, *(text_of(m["content"]) for m in system)])):
        text, names, reasoning_tokens = compose_title(user_text), [], []
    else:
        text = (
            compose_tool_report(conversation, results)
            if results
            else compose_answer(user_text, turn)
        )
        text = _attachment_lines(conversation[last_user] if user_positions else None) + text
    choices = [
        _plan_choice(
            f"Choice {number} of {n}.\n\n{text}" if n > 1 else text,
            calls=[ToolCall(name, tool_arguments(tools[name], directives)) for name in names],
            reasoning_tokens=reasoning_tokens,
            directives=directives,
            max_tokens=max_tokens,
            words_per_chunk=words_per_chunk,
        )
        for number in range(1, n + 1)
    ]
    if audio is not None:
        for index, choice in enumerate(choices):
            if not choice.calls:
                choice.audio = tone(index, audio.format)
                choice.output_tokens += AUDIO_TOKENS
    images = sum(
        attachment["kind"] == "image"
        for message in conversation
        for attachment in message.get("files") or ()
    )
    input_tokens = count_words(instructions) + sum(message_words(m) for m in conversation)
    counts = _Counts(
        input_tokens=max(1, input_tokens) + images * IMAGE_TOKENS,
        cached=sum(message_words(m) for m in history),
        output=sum(choice.output_tokens for choice in choices),
        reasoning=len(reasoning_tokens) * n,
        image=images * IMAGE_TOKENS,
        audio=sum(AUDIO_TOKENS for choice in choices if choice.audio is not None),
    )
    usage = _usage(directives.usage or default_usage, counts)
    return Plan(
        model=model, directives=directives, conversation=conversation, choices=choices, usage=usage
    )


def _reasoning_text(names: list[str], results: list[Message], user_text: str, turn: int) -> str:
    if names:
        return tool_reasoning(names, 0)
    if results:
        return tool_reasoning([], len(results))
    return compose_reasoning(user_text, turn)


def _plan_choice(
    text: str,
    *,
    calls: list[ToolCall],
    reasoning_tokens: list[str],
    directives: Directives,
    max_tokens: Any,
    words_per_chunk: int,
) -> Choice:
    """One choice: the tool calls, or ``text`` (padded to ``#chunks``, cut at ``max_tokens``)."""
    answer_tokens: list[str] = []
    if not calls:
        answer_tokens = tokens_of(text)
        if directives.chunks is not None:
            wanted = directives.chunks * words_per_chunk
            filler = filler_paragraphs(0)
            while len(answer_tokens) < wanted:
                answer_tokens.append(next(filler))
            del answer_tokens[wanted:]
    # One word is one token. Like OpenAI, the limit covers reasoning and answer together.
    incomplete = False
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        room = max(0, max_tokens - len(reasoning_tokens))
        if len(answer_tokens) > room:
            del answer_tokens[room:]
            incomplete = True
    return Choice(
        reasoning_chunks=split_chunks(reasoning_tokens, words_per_chunk),
        answer_chunks=split_chunks(answer_tokens, words_per_chunk),
        calls=calls,
        incomplete=incomplete,
        output_tokens=(
            len(answer_tokens) + len(reasoning_tokens) + sum(call.tokens for call in calls)
        ),
    )
