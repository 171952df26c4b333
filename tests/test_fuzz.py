"""Property-based fuzzing (hypothesis) of everything that reads untrusted input byte by byte:
the SSE parser, both upstream translators, parameter validation, tool schema and argument
checks, and the websocket action parser.

The property everywhere: no exception escapes except the module's own clear error type, and
every failure is a clear message. Derandomized and without an example database, so CI runs the
same examples every time; a few seconds in all.
"""

from __future__ import annotations

import itertools
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.live import parse_resume
from chat.services import parameters, tools
from chat.upstream import events as ev
from chat.upstream.chat_completions import ChatStreamTranslator
from chat.upstream.chat_completions import parse_response as parse_chat_response
from chat.upstream.encoding import encode
from chat.upstream.request import Api, Message, Request, ToolSpec
from chat.upstream.responses_api import MALFORMED_MESSAGE, ResponsesStreamTranslator
from chat.upstream.responses_api import parse_response as parse_responses_response
from chat.upstream.sse import SSEMessage, SSEParser
from chat.ws_actions import ACTIONS, ActionRefused, parse_action

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- strategies ------------------------------------------------------------------------------

# Keys the translators look at, so random objects reach their branches, not only the top.
_KEYS = [
    "type", "id", "model", "choices", "index", "delta", "message", "content", "reasoning",
    "reasoning_content", "tool_calls", "function", "name", "arguments", "finish_reason",
    "usage", "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens",
    "total_tokens", "error", "code", "response", "output", "item", "item_id", "output_index",
    "content_index", "summary_index", "text", "call_id", "status", "incomplete_details",
    "reason", "part", "summary", "input_tokens_details", "cached_tokens",
]  # fmt: skip
_EVENT_TYPES = [
    "response.created", "response.in_progress", "response.output_text.delta",
    "response.output_text.done", "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta", "response.output_item.added",
    "response.output_item.done", "response.function_call_arguments.delta",
    "response.function_call_arguments.done", "response.completed", "response.incomplete",
    "response.failed", "error", "response.content_part.added",
]  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(_EVENT_TYPES)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.sampled_from(_KEYS), json_values, max_size=8)


def _deeply_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# SSE data lines as gateways send them: JSON objects, [DONE], broken JSON, deep nesting.
sse_data = (
    json_objects.map(json.dumps)
    | st.just("[DONE]")
    | st.text(max_size=40)
    | st.integers(min_value=1, max_value=5000).map(_deeply_nested)
    | json_objects.map(lambda obj: json.dumps(obj)[:-1])  # cut short
)


def _event_is_well_typed(event: object) -> None:
    """Every event field has the type the runner relies on."""
    assert isinstance(event, ev.Event)
    if isinstance(event, ev.TextDelta | ev.ReasoningDelta):
        assert isinstance(event.text, str)
    elif isinstance(event, ev.ToolCallDelta):
        assert isinstance(event.index, int) and isinstance(event.arguments_delta, str)
        assert event.call_id is None or isinstance(event.call_id, str)
        assert event.name is None or isinstance(event.name, str)
    elif isinstance(event, ev.ToolCallDone):
        assert isinstance(event.index, int)
        assert all(isinstance(v, str) for v in (event.call_id, event.name, event.arguments))
    elif isinstance(event, ev.Started | ev.Completed):
        assert event.response_id is None or isinstance(event.response_id, str)
        if isinstance(event, ev.Started):
            assert event.model is None or isinstance(event.model, str)
    elif isinstance(event, ev.Usage):
        assert all(isinstance(getattr(event, f), int) for f in ev.Usage.__dataclass_fields__)
    elif isinstance(event, ev.Failed):
        assert isinstance(event.message, str) and event.message.strip()
        assert event.kind in {"http", "timeout", "connection", "protocol", "upstream"}


# -- SSE parser ---------------------------------------------------------------------------------


def _parse(chunks: list[bytes]) -> list[SSEMessage]:
    parser = SSEParser()
    messages = [m for chunk in chunks for m in parser.feed(chunk)]
    return messages + parser.close()


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@FUZZ
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_sse_random_bytes_parse_the_same_however_they_are_split(data, cuts):
    whole = _parse([data])
    assert _parse(_split(data, cuts)) == whole
    assert _parse([bytes([b]) for b in data]) == whole  # one byte at a time
    for message in whole:
        assert isinstance(message.data, str)


_line_ends = st.sampled_from(["\n", "\r\n", "\r"])
# Text with multi-byte UTF-8 (é, €, emoji) but no line breaks, as inside one field.
_field_text = st.text(
    alphabet=st.sampled_from(list(string.ascii_letters + ' :{}",é€😀')), max_size=20
)


@FUZZ
@given(
    events=st.lists(
        st.tuples(st.none() | _field_text, st.lists(_field_text, min_size=1, max_size=3)),
        max_size=5,
    ),
    end=_line_ends,
    cuts=st.lists(st.integers(min_value=0), max_size=15),
)
def test_sse_well_formed_streams_are_read_exactly_with_any_split(events, end, cuts):
    """Splits may fall inside a UTF-8 character or between the \\r and \\n of a CRLF."""
    text = ""
    for name, lines in events:
        if name is not None:
            text += f"event: {name}{end}"
        text += "".join(f"data: {line}{end}" for line in lines) + end
    expected = [(name or None, "\n".join(line for line in lines)) for name, lines in events]
    got = _parse(_split(text.encode(), cuts))
    assert [(m.event, m.data) for m in got] == expected


# -- translators ---------------------------------------------------------------------------------


def _translate(translator, items: list[tuple[str | None, str]]) -> list[object]:
    out: list[object] = []
    for event_name, data in items:
        out.extend(translator.feed(SSEMessage(event_name, data)))
    out.extend(translator.close())
    return out


_stream_items = st.lists(st.tuples(st.none() | st.sampled_from(_EVENT_TYPES), sse_data), max_size=8)


@FUZZ
@given(items=_stream_items)
def test_chat_completions_translator_turns_anything_into_well_typed_events(items):
    for event in _translate(ChatStreamTranslator(), items):
        _event_is_well_typed(event)


@FUZZ
@given(items=_stream_items)
def test_responses_translator_turns_anything_into_well_typed_events(items):
    for event in _translate(ResponsesStreamTranslator(), items):
        _event_is_well_typed(event)


@FUZZ
@given(body=json_values)
def test_whole_responses_of_either_api_are_read_without_crashing(body):
    for parse in (parse_chat_response, parse_responses_response):
        for event in parse(body):
            _event_is_well_typed(event)


@pytest.mark.parametrize("translator", [ChatStreamTranslator, ResponsesStreamTranslator])
@pytest.mark.parametrize("data", ["{", "[1, 2", "nul", _deeply_nested(100_000), '"text"', "42"])
def test_malformed_data_is_a_clear_protocol_failure(translator, data):
    [event] = translator().feed(SSEMessage(None, data))
    assert event == ev.Failed(MALFORMED_MESSAGE, "protocol")


# -- parameters ----------------------------------------------------------------------------------

_ALL_SPECS = {spec.name: spec for api in parameters.APIS for spec in parameters.specs_for(api)}


def _value_for(spec) -> st.SearchStrategy[str]:
    """Plausible and hostile strings for one parameter: numbers of every shape, choices,
    JSON of every depth, long and odd text."""
    numbers = (
        st.integers(min_value=-(10**30), max_value=10**30).map(str)
        | st.floats().map(repr)
        | st.sampled_from(["nan", "inf", "-inf", "1e400", "1_000", "0x10", "٣", "²", "9" * 5000])
    )
    choices = st.sampled_from([value for value, _ in spec.choices] or ["x"])
    json_text = json_values.map(json.dumps) | st.integers(1, 3000).map(_deeply_nested)
    return numbers | choices | json_text | st.text(max_size=60) | st.just("x" * 40_000)


@st.composite
def _forms(draw) -> dict[str, str]:
    names = draw(st.lists(st.sampled_from(sorted(_ALL_SPECS)), max_size=6, unique=True))
    return {name: draw(_value_for(_ALL_SPECS[name])) for name in names}


@FUZZ
@given(form=_forms(), api=st.sampled_from(parameters.APIS), tool_names=st.sets(st.text(max_size=5)))
def test_parameter_validation_returns_values_or_clear_errors(form, api, tool_names):
    params, errors = parameters.validate(form, api, tool_names=tool_names)
    assert set(params).isdisjoint(errors)
    for name, message in errors.items():
        assert name in _ALL_SPECS or name == "response_schema"
        assert isinstance(message, str) and message.strip().endswith(".")
    json.dumps(params, allow_nan=False)  # storable as JSON, sendable upstream
    # and the request can be built from them
    tools = [ToolSpec(name, "", {"type": "object"}) for name in sorted(tool_names)]
    sent = parameters.request_parameters(params, api)
    request = Request(Api(api), "m", [Message("user", "hi")], sent, tools)
    json.dumps(encode(request), allow_nan=False)


# -- tool schemas and arguments ------------------------------------------------------------------

_SCHEMA_KEYWORDS = [
    "type", "properties", "patternProperties", "additionalProperties", "items", "pattern",
    "enum", "const", "anyOf", "oneOf", "allOf", "not", "required", "uniqueItems", "minLength",
    "maxLength", "$ref", "$defs", "minimum", "format", "unevaluatedProperties", "$schema",
]  # fmt: skip
_patterns = st.sampled_from(
    ["^(a+)+$", "(?=a)", "(a)\\1", "[", "\\u00e9", "^x-", ".*", "a{1001}", "\\p{L}+"]
)
schema_values = st.recursive(
    json_scalars | _patterns,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_SCHEMA_KEYWORDS) | _patterns, children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    schema=st.dictionaries(st.sampled_from(_SCHEMA_KEYWORDS), schema_values, max_size=5),
    arguments=json_values.map(json.dumps) | st.text(max_size=30),
)
def test_tool_schema_and_argument_checks_answer_with_messages(schema, arguments):
    schema = {"type": "object", **schema}
    problem = tools.schema_error(schema)
    assert problem is None or (isinstance(problem, str) and problem.endswith("."))
    checked, message = tools.check_arguments(schema, arguments)
    assert (checked is None) != (message is None)
    assert message is None or (isinstance(message, str) and message.endswith("."))


# -- websocket actions ---------------------------------------------------------------------------

_frame_values = json_values | st.sampled_from(sorted(ACTIONS))
frames = (
    st.dictionaries(
        st.sampled_from(["action", "message", "turn_id", "call_id", "result", "HEADERS"]),
        _frame_values,
        max_size=5,
    ).map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=50)
    | st.integers(1, 200_000).map(lambda n: '{"action": "send", "x": ' + _deeply_nested(n) + "}")
    | st.integers(1, 10).map(lambda n: json.dumps({"message": "x" * (n * 40_000)}))
)


@FUZZ
@given(frame=frames | st.binary(max_size=20))
def test_websocket_frames_parse_to_an_action_or_a_clear_refusal(frame):
    try:
        action = parse_action(frame, 32_000)
    except ActionRefused as exc:
        assert str(exc).endswith(".")
        return
    assert action["action"] in ACTIONS
    for name in ("message", "result", "call_id"):
        assert name not in action or isinstance(action[name], str)


@FUZZ
@given(
    query=st.binary(max_size=60)
    | st.lists(
        st.sampled_from(["leaf=", "resume=", "&", ":", ",", "1", "0", "9" * 30, "%C2%B2", "²"]),
        max_size=12,
    ).map(lambda parts: "".join(parts).encode())
)
def test_a_reconnecting_pages_query_parses_or_is_ignored(query):
    resumed = parse_resume(query)
    if resumed is not None:
        leaf, offsets = resumed
        assert leaf is None or 0 < leaf < 2**63
        assert all(0 < turn < 2**63 and min(counts) >= 0 for turn, counts in offsets.items())


def test_a_text_part_named_by_an_unhashable_id_is_still_relayed():
    """Found by the fuzzer: an ``item_id`` that is a list made the translator raise."""
    events = _translate(
        ResponsesStreamTranslator(),
        [("response.output_text.done", '{"item_id": [], "content_index": {}, "text": "hi"}')],
    )
    assert [e.text for e in events if isinstance(e, ev.TextDelta)] == ["hi"]
