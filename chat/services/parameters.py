"""Per-thread request parameters: what the form offers for each API, and checking what the user
typed.

The stored dict (``Thread.params``, ``Preset.params``, ``Turn.params``) holds only what the user
set, keyed by ``ParamSpec.name``, in our own API-neutral shape; ``request_parameters`` gives the
neutral ``chat.upstream.request.Parameters`` of one API, which ``chat.upstream`` encodes for
``/v1/responses`` or ``/v1/chat/completions``. Only set parameters are sent, so the gateway's own
defaults apply to everything else. Pure functions: no ORM, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from chat.services.tools import MAX_SCHEMA_BYTES, parse_json_object, schema_error
from chat.upstream.request import (
    AUDIO_FORMATS,
    FUNCTION_PREFIX,
    TEXT_AND_AUDIO,
    TEXT_ONLY,
    VOICES,
    Api,
    Parameters,
)

__all__ = [
    "APIS",
    "GROUPS",
    "SPECS",
    "SPECS_BY_NAME",
    "ParamSpec",
    "form_values",
    "request_parameters",
    "specs_for",
    "system_prompt",
    "user_identifier",
    "validate",
]

APIS = tuple(Api)
_BOTH = frozenset(APIS)
_RESPONSES_ONLY = frozenset({Api.RESPONSES})
_CHAT_ONLY = frozenset({Api.CHAT})

# Display order of the form's sections.
GROUPS = ("Instructions", "Sampling", "Length", "Reasoning", "Output", "Tools", "Other")

# Instructions ride along with every request of the thread; same bound as a chat message's default.
MAX_INSTRUCTIONS_CHARS = 32_000
MAX_STOP_SEQUENCES = 4  # both APIs: "Up to 4 stop sequences"
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
# Seeds are integers on the wire; beyond a signed 64-bit value some gateways overflow.
_INT64 = 2**63 - 1


@dataclass(frozen=True)
class ParamSpec:
    """One request parameter as the form shows it and the stored dict keeps it."""

    name: str
    label: str
    kind: str  # float, int, choice, text, bool, stop, json_map, key_value, json_schema
    apis: frozenset[str]
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    provider_specific: bool = False
    group: str = "Other"
    # The minimum itself is not allowed (repetition_penalty must be > 0).
    exclusive_minimum: bool = False
    # Maximum text length, for kind "text".
    max_length: int | None = None


_BOOL_CHOICES = (("true", "Yes"), ("false", "No"))

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "instructions",
        "Instructions",
        "text",
        _BOTH,
        help="System instructions. With Chat Completions they are sent as the system message.",
        group="Instructions",
        max_length=MAX_INSTRUCTIONS_CHARS,
    ),
    ParamSpec(
        "temperature",
        "Temperature",
        "float",
        _BOTH,
        minimum=0,
        maximum=2,
        help="Randomness, 0 to 2. Tune this or top P, not both.",
        group="Sampling",
    ),
    ParamSpec(
        "top_p",
        "Top P",
        "float",
        _BOTH,
        minimum=0,
        maximum=1,
        help="Nucleus sampling, 0 to 1: only the most likely tokens up to this probability mass.",
        group="Sampling",
    ),
    ParamSpec(
        "top_k",
        "Top K",
        "int",
        _RESPONSES_ONLY,
        minimum=1,
        help="Sample only from the K most likely tokens. Not every provider supports it.",
        provider_specific=True,
        group="Sampling",
    ),
    ParamSpec(
        "repetition_penalty",
        "Repetition penalty",
        "float",
        _RESPONSES_ONLY,
        minimum=0,
        maximum=2,
        exclusive_minimum=True,
        help="Above 1 discourages repeating tokens. Not every provider supports it.",
        provider_specific=True,
        group="Sampling",
    ),
    ParamSpec(
        "presence_penalty",
        "Presence penalty",
        "float",
        _CHAT_ONLY,
        minimum=-2,
        maximum=2,
        help="-2 to 2. Positive values push the model towards new topics.",
        group="Sampling",
    ),
    ParamSpec(
        "frequency_penalty",
        "Frequency penalty",
        "float",
        _CHAT_ONLY,
        minimum=-2,
        maximum=2,
        help="-2 to 2. Positive values reduce verbatim repetition.",
        group="Sampling",
    ),
    ParamSpec(
        "seed",
        "Seed",
        "int",
        _BOTH,
        minimum=-_INT64 - 1,
        maximum=_INT64,
        help="The same seed and parameters give answers as repeatable as the model allows.",
        group="Sampling",
    ),
    ParamSpec(
        "logit_bias",
        "Logit bias",
        "json_map",
        _CHAT_ONLY,
        minimum=-100,
        maximum=100,
        help='A JSON object of token ID to bias from -100 to 100, e.g. {"50256": -100}.',
        group="Sampling",
    ),
    ParamSpec(
        "max_output_tokens",
        "Max output tokens",
        "int",
        _BOTH,
        minimum=1,
        help="Upper bound for the answer's tokens, reasoning included.",
        group="Length",
    ),
    ParamSpec(
        "max_tokens_field",
        "Send the limit as",
        "choice",
        _CHAT_ONLY,
        choices=(
            ("max_completion_tokens", "max_completion_tokens (current)"),
            ("max_tokens", "max_tokens (legacy gateways)"),
        ),
        help="Which Chat Completions field carries the output limit.",
        group="Length",
    ),
    ParamSpec(
        "truncation",
        "Truncation",
        "choice",
        _RESPONSES_ONLY,
        choices=(
            ("auto", "Auto: drop older context when the window is full"),
            ("disabled", "Disabled: fail when the window is full"),
        ),
        group="Length",
    ),
    ParamSpec(
        "reasoning_effort",
        "Reasoning effort",
        "choice",
        _BOTH,
        choices=(("low", "Low"), ("medium", "Medium"), ("high", "High")),
        help="Only reasoning-capable models use it.",
        group="Reasoning",
    ),
    ParamSpec(
        "reasoning_summary",
        "Reasoning summary",
        "choice",
        _RESPONSES_ONLY,
        choices=(("auto", "Auto"), ("concise", "Concise"), ("detailed", "Detailed")),
        help="How much of the model's reasoning is returned.",
        group="Reasoning",
    ),
    ParamSpec(
        "stop",
        "Stop sequences",
        "stop",
        _BOTH,
        maximum=MAX_STOP_SEQUENCES,
        help=r"Up to 4, one per line. Write \n for a line break, \t for a tab, \\ for a backslash.",
        group="Output",
    ),
    ParamSpec(
        "response_format",
        "Response format",
        "choice",
        _BOTH,
        choices=(
            ("text", "Text"),
            ("json_object", "JSON object"),
            ("json_schema", "JSON matching a schema"),
        ),
        group="Output",
    ),
    ParamSpec(
        "response_schema",
        "Response schema",
        "json_schema",
        _BOTH,
        help="A JSON Schema the answer must match; used with “JSON matching a schema”.",
        group="Output",
    ),
    ParamSpec(
        "n",
        "Number of answers",
        "int",
        _CHAT_ONLY,
        minimum=1,
        maximum=8,
        help="Completions generated per request (1 to 8); each one costs tokens.",
        group="Output",
    ),
    ParamSpec(
        "modalities",
        _("Answer as"),
        "choice",
        _CHAT_ONLY,
        choices=((TEXT_ONLY, _("Text")), (TEXT_AND_AUDIO, _("Text and audio"))),
        help=_("Text and audio: the model also speaks its answer; a player shows next to it."),
        group="Output",
    ),
    ParamSpec(
        "audio_voice",
        _("Voice"),
        "choice",
        _CHAT_ONLY,
        choices=tuple((voice, voice.capitalize()) for voice in VOICES),
        help=_("The voice of spoken answers (with “Text and audio”)."),
        group="Output",
    ),
    ParamSpec(
        "audio_format",
        _("Audio format"),
        "choice",
        _CHAT_ONLY,
        choices=tuple((name, name) for name in AUDIO_FORMATS),
        help=_("The format of spoken answers; WAV when not set."),
        group="Output",
    ),
    ParamSpec(
        "tool_choice",
        "Tool choice",
        "choice",
        _BOTH,
        # The form adds one "function:<name>" choice per tool of the thread.
        choices=(
            ("auto", "Auto: the model decides"),
            ("none", "None: never call a tool"),
            ("required", "Required: call at least one tool"),
        ),
        group="Tools",
    ),
    ParamSpec(
        "parallel_tool_calls",
        "Parallel tool calls",
        "bool",
        _BOTH,
        choices=_BOOL_CHOICES,
        help="Allow several tool calls in one step.",
        group="Tools",
    ),
    ParamSpec(
        "store",
        "Store responses",
        "bool",
        _RESPONSES_ONLY,
        choices=_BOOL_CHOICES,
        help="Let the gateway keep responses, so follow-ups send only the new message.",
        group="Other",
    ),
    ParamSpec(
        "metadata",
        "Metadata",
        "key_value",
        _RESPONSES_ONLY,
        maximum=MAX_METADATA_PAIRS,
        help="Up to 16 key=value lines, for tracking on the gateway's side.",
        group="Other",
    ),
)

SPECS_BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in SPECS}


def specs_for(api: str) -> list[ParamSpec]:
    """The parameters ``api`` understands, in form order."""
    # A typo here would silently send nothing; an unknown API is a programming error.
    if api not in APIS:
        raise ValueError(f"Unknown API {api!r}; expected one of {APIS}.")
    return [spec for spec in SPECS if api in spec.apis]


# --- Validation -----------------------------------------------------------------------------


class _Invalid(Exception):
    """A user-facing message for one field."""


def _number_text(value: float) -> str:
    """2.0 → "2", 0.5 → "0.5": bounds and values read the way people type them."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _check_range(spec: ParamSpec, value: float) -> None:
    low, high = spec.minimum, spec.maximum
    below = low is not None and (value <= low if spec.exclusive_minimum else value < low)
    above = high is not None and value > high
    if not (below or above):
        return
    if spec.exclusive_minimum and high is not None:
        message = f"must be greater than {_number_text(low)} and at most {_number_text(high)}"
    elif low is not None and high is not None:
        message = f"must be between {_number_text(low)} and {_number_text(high)}"
    elif low is not None:
        message = f"must be at least {_number_text(low)}"
    else:
        message = f"must be at most {_number_text(high)}"
    raise _Invalid(f"{spec.label} {message}.")


def _parse_float(spec: ParamSpec, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Invalid(f"{spec.label} must be a number.") from None
    if not math.isfinite(value):  # float() accepts "nan" and "inf"; JSON cannot carry them
        raise _Invalid(f"{spec.label} must be a number.")
    _check_range(spec, value)
    return value


def _parse_int(spec: ParamSpec, text: str) -> int:
    try:
        # int() also fails on absurdly long digit strings (Python's int_max_str_digits).
        value = int(text)
    except ValueError:
        raise _Invalid(f"{spec.label} must be a whole number.") from None
    _check_range(spec, value)
    return value


def _parse_choice(spec: ParamSpec, text: str) -> str:
    allowed = [value for value, _ in spec.choices]
    if text not in allowed:
        raise _Invalid(f"{spec.label} must be one of: {', '.join(allowed)}.")
    return text


def _parse_bool(spec: ParamSpec, text: str) -> bool:
    # Tri-state: blank (not set) was handled by the caller; only an explicit answer remains.
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise _Invalid(f"{spec.label} must be yes, no or not set.")


def _lines(text: str) -> list[str]:
    # Browsers send textarea line breaks as CRLF.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def _unescape(line: str) -> str:
    """Decode \\n, \\t and \\\\ so a stop sequence can contain a line break or a tab."""
    out: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            # An unknown escape stays as typed: "\d" is two characters, not an error.
            out.append(_ESCAPES.get(following, "\\" + following))
        else:
            out.append(char)
    return "".join(out)


def _escape(sequence: str) -> str:
    return sequence.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _parse_stop(spec: ParamSpec, text: str) -> list[str]:
    # Empty lines are ignored, other lines kept as typed: a leading space can matter.
    sequences = [_unescape(line) for line in _lines(text) if line.strip()]
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise _Invalid(f"{spec.label}: at most {MAX_STOP_SEQUENCES}, one per line.")
    return sequences


def _parse_logit_bias(spec: ParamSpec, text: str) -> dict[str, int | float]:
    parsed, error = parse_json_object(text, spec.label, plural=False)
    if error:
        raise _Invalid(error)
    result: dict[str, int | float] = {}
    for key, value in parsed.items():
        if not (key.isascii() and key.isdigit()):
            raise _Invalid(f'{spec.label}: keys must be token IDs (whole numbers), not "{key}".')
        # bool is an int subclass; JSON true is not a bias.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"{spec.label}: the bias of token {key} must be a number.")
        if not spec.minimum <= value <= spec.maximum:
            raise _Invalid(
                f"{spec.label}: the bias of token {key} must be between "
                f"{_number_text(spec.minimum)} and {_number_text(spec.maximum)}."
            )
        result[key] = value
    return result


def _parse_metadata(spec: ParamSpec, text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise _Invalid(f"{spec.label}: line {number} must look like key=value.")
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise _Invalid(
                f"{spec.label}: the key on line {number} is longer than "
                f"{MAX_METADATA_KEY_CHARS} characters."
            )
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise _Invalid(
                f"{spec.label}: the value on line {number} is longer than "
                f"{MAX_METADATA_VALUE_CHARS} characters."
            )
        if key in result:
            raise _Invalid(f'{spec.label}: the key "{key}" appears twice.')
        result[key] = value
    if len(result) > MAX_METADATA_PAIRS:
        raise _Invalid(f"{spec.label}: at most {MAX_METADATA_PAIRS} key=value pairs.")
    return result


def _parse_schema(spec: ParamSpec, text: str) -> dict[str, Any]:
    size = len(text.encode("utf-8"))
    if size > MAX_SCHEMA_BYTES:
        raise _Invalid(f"{spec.label} can be at most {MAX_SCHEMA_BYTES} bytes (this is {size}).")
    parsed, error = parse_json_object(text, spec.label, plural=False)
    if error:
        raise _Invalid(error)
    if message := schema_error(parsed):
        raise _Invalid(message)
    return parsed


def _parse_tool_choice(spec: ParamSpec, text: str, tool_names: set[str]) -> str:
    if text.startswith(FUNCTION_PREFIX):
        name = text[len(FUNCTION_PREFIX) :]
        if name not in tool_names:
            raise _Invalid(f'{spec.label}: "{name}" is not one of this thread\'s tools.')
        return text
    return _parse_choice(spec, text)


def _parse_text(spec: ParamSpec, text: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if spec.max_length is not None and len(text) > spec.max_length:
        raise _Invalid(
            f"{spec.label} can be at most {spec.max_length} characters (this is {len(text)})."
        )
    return text


def validate(
    data: Mapping[str, str], api: str, *, tool_names: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check the raw form strings for ``api``'s parameters.

    Returns (params, errors): params holds only the parameters that were set (blank or absent
    means "not set", so the gateway's default applies), typed for JSON storage; errors maps field
    names to messages for the form. Keys of other APIs and unknown keys are ignored.
    ``tool_names`` are the thread's tools, which a "function:<name>" tool choice must name.
    """
    names = set(tool_names)
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in specs_for(api):
        raw = data.get(spec.name)
        if raw is None or not str(raw).strip():
            continue
        text = str(raw)
        try:
            if spec.kind == "text":
                value: Any = _parse_text(spec, text)
            elif spec.kind == "stop":
                value = _parse_stop(spec, text)
            elif spec.kind == "key_value":
                value = _parse_metadata(spec, text)
            elif spec.kind == "json_map":
                value = _parse_logit_bias(spec, text.strip())
            elif spec.kind == "json_schema":
                value = _parse_schema(spec, text.strip())
            elif spec.kind == "float":
                value = _parse_float(spec, text.strip())
            elif spec.kind == "int":
                value = _parse_int(spec, text.strip())
            elif spec.kind == "bool":
                value = _parse_bool(spec, text.strip())
            elif spec.name == "tool_choice":
                value = _parse_tool_choice(spec, text.strip(), names)
            else:
                value = _parse_choice(spec, text.strip())
        except _Invalid as exc:
            errors[spec.name] = str(exc)
            continue
        params[spec.name] = value

    # The schema is kept when another format is chosen (switching back keeps it); it is only
    # required, and only sent, with the json_schema format.
    if (
        params.get("response_format") == "json_schema"
        and "response_schema" not in params
        and "response_schema" not in errors
    ):
        errors["response_schema"] = "Enter the JSON Schema the answer must match."
    if (
        params.get("modalities") == TEXT_AND_AUDIO
        and "audio_voice" not in params
        and "audio_voice" not in errors
    ):
        errors["audio_voice"] = str(_("Choose the voice of spoken answers."))
    return params, errors


# --- Upstream request -----------------------------------------------------------------------


def system_prompt(params: Mapping[str, Any]) -> str | None:
    """The instructions, which Chat Completions sends as the first (system) message."""
    text = params.get("instructions")
    return text if isinstance(text, str) and text.strip() else None


def request_parameters(params: Mapping[str, Any], api: str) -> Parameters:
    """The stored params that ``api`` has, as the neutral ``Parameters`` of a request (the
    upstream package encodes them). Parameters of the other API are left out: a thread may
    switch API and keep its params."""
    available = {spec.name for spec in specs_for(api)}
    values = {name: params.get(name) for name in available if params.get(name) is not None}
    values["instructions"] = system_prompt(params) if "instructions" in available else None
    return Parameters(**values)


# --- Form round trip and the user field -----------------------------------------------------


def form_values(params: Mapping[str, Any]) -> dict[str, str]:
    """The form strings that ``validate`` would turn back into ``params`` (for re-rendering)."""
    values: dict[str, str] = {}
    for spec in SPECS:
        value = params.get(spec.name)
        if value is None:
            continue
        if spec.kind == "bool":
            values[spec.name] = "true" if value else "false"
        elif spec.kind == "stop":
            sequences = [value] if isinstance(value, str) else list(value)
            values[spec.name] = "\n".join(_escape(s) for s in sequences)
        elif spec.kind == "key_value":
            values[spec.name] = "\n".join(f"{k}={v}" for k, v in dict(value).items())
        elif spec.kind in ("json_map", "json_schema"):
            values[spec.name] = json.dumps(value, indent=2, ensure_ascii=False)
        elif spec.kind == "float":
            values[spec.name] = _number_text(float(value))
        else:
            values[spec.name] = str(value)
    return values


def user_identifier(user_id: int, secret: str) -> str:
    """A stable pseudonym for the upstream ``user`` field: the gateway can tell users apart for
    abuse monitoring, but cannot learn or guess our account ids (HMAC with a server secret)."""
    digest = hmac.new(secret.encode("utf-8"), str(user_id).encode("ascii"), hashlib.sha256)
    return "u_" + digest.hexdigest()[:32]
