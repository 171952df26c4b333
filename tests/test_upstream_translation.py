"""Both upstream APIs, streamed or not, become the same normalized events."""

import json

import pytest

from chat.upstream import chat_completions, responses_api
from chat.upstream.chat_completions import ChatStreamTranslator
from chat.upstream.events import (
    Completed,
    Failed,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    Usage,
)
from chat.upstream.responses_api import ResponsesStreamTranslator
from chat.upstream.sse import SSEMessage

RESPONSES_USAGE = {
    "input_tokens": 15,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 80,
    "output_tokens_details": {"reasoning_tokens": 30},
    "total_tokens": 95,
}
CHAT_USAGE = {
    "prompt_tokens": 15,
    "completion_tokens": 80,
    "total_tokens": 95,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 30, "audio_tokens": 0},
}
EXPECTED_USAGE = Usage(15, 80, 95, 4, 30)


def sse(payload, event=None):
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return SSEMessage(event if event is not None else None, data)


def feed(translator, *payloads):
    return [event for payload in payloads for event in translator.feed(sse(payload))]


@pytest.mark.parametrize("payload", [RESPONSES_USAGE, CHAT_USAGE])
def test_usage_reads_both_schemas(payload):
    assert Usage.from_payload(payload) == EXPECTED_USAGE


def test_usage_without_total_adds_up_and_ignores_junk():
    assert Usage.from_payload({"prompt_tokens": 3, "completion_tokens": "x"}) == Usage(3, 0, 3)
    assert Usage.from_payload(None) == Usage()


# --- Responses API ---------------------------------------------------------------------------


def test_responses_build_request_sets_only_given_keys():
    assert responses_api.build_request("m", "hi") == {"model": "m", "input": "hi", "stream": True}
    body = responses_api.build_request(
        "m",
        None,
        previous_response_id="resp_1",
        instructions="Be brief.",
        params={"temperature": 0.2, "reasoning": {"effort": "low"}, "stream": False},
    )
    assert body == {
        "model": "m",
        "previous_response_id": "resp_1",
        "instructions": "Be brief.",
        "temperature": 0.2,
        "reasoning": {"effort": "low"},
        "stream": True,
    }


def test_responses_text_stream():
    translator = ResponsesStreamTranslator()
    events = feed(
        translator,
        {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5.4"}},
        {"type": "response.in_progress", "response": {"id": "resp_1"}},
        {"type": "response.output_item.added", "item": {"type": "message", "id": "msg_1"}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Hel"},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": ""},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "lo"},
        {"type": "response.output_text.done", "item_id": "msg_1", "text": "Hello"},
        {
            "type": "response.completed",
            "response": {"id": "resp_1", "status": "completed", "usage": RESPONSES_USAGE},
        },
        "[DONE]",
    )
    assert events == [
        Started("resp_1", "gpt-5.4"),
        TextDelta("Hel"),
        TextDelta("lo"),
        EXPECTED_USAGE,
        Completed("resp_1", "completed"),
    ]


def test_responses_completed_with_chat_usage_schema():
    events = feed(
        ResponsesStreamTranslator(),
        {"type": "response.completed", "response": {"id": "r", "usage": CHAT_USAGE}},
    )
    assert events[-2:] == [EXPECTED_USAGE, Completed("r", "completed")]


def test_responses_reasoning_summary_and_reasoning_text():
    events = feed(
        ResponsesStreamTranslator(),
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs",
            "summary_index": 0,
            "delta": "First.",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs",
            "summary_index": 1,
            "delta": "Second.",
        },
        {"type": "response.reasoning_text.delta", "item_id": "rs2", "delta": "Raw"},
    )
    # Separate summary parts stay separate paragraphs instead of running together.
    assert events == [
        ReasoningDelta("First."),
        ReasoningDelta("\n\nSecond."),
        ReasoningDelta("\n\nRaw"),
    ]


def test_responses_function_call_stream():
    added = {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "get_weather"}
    done_item = {**added, "arguments": '{"city":"Oslo"}', "status": "completed"}
    events = feed(
        ResponsesStreamTranslator(),
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**added, "arguments": ""},
        },
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"city":'},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '"Oslo"}'},
        {
            "type": "response.function_call_arguments.done",
            "output_index": 1,
            "arguments": '{"city":"Oslo"}',
        },
        {"type": "response.output_item.done", "output_index": 1, "item": done_item},
        {"type": "response.completed", "response": {"id": "r", "status": "completed"}},
    )
    # The event index counts function calls only (like Chat and parse_response), so the item's
    # output_index 1 (after, say, a reasoning item) is call 0.
    assert events == [
        ToolCallDelta(0, "call_9", "get_weather", ""),
        ToolCallDelta(0, "call_9", "get_weather", '{"city":'),
        ToolCallDelta(0, "call_9", "get_weather", '"Oslo"}'),
        ToolCallDone(0, "call_9", "get_weather", '{"city":"Oslo"}'),
        Completed("r", "completed"),
    ]


def test_responses_parallel_calls_after_reasoning_are_numbered_from_zero():
    def item(number, **extra):
        return {
            "type": "function_call",
            "id": f"fc_{number}",
            "call_id": f"call_{number}",
            "name": "calc",
            **extra,
        }

    events = feed(
        ResponsesStreamTranslator(),
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning"}},
        {"type": "response.output_item.added", "output_index": 1, "item": item(1, arguments="")},
        {"type": "response.output_item.added", "output_index": 2, "item": item(2, arguments="")},
        # Pieces found by item_id alone, then by output_index alone, interleaved.
        {"type": "response.function_call_arguments.delta", "item_id": "fc_2", "delta": "{}"},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{"},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": "}"},
        {"type": "response.function_call_arguments.done", "item_id": "fc_1", "arguments": "{}"},
        {"type": "response.output_item.done", "output_index": 1, "item": item(1, arguments="{}")},
        {
            "type": "response.completed",
            "response": {"id": "r", "output": [item(1, arguments="{}"), item(2, arguments="{}")]},
        },
    )
    assert events == [
        ToolCallDelta(0, "call_1", "calc", ""),
        ToolCallDelta(1, "call_2", "calc", ""),
        ToolCallDelta(1, "call_2", "calc", "{}"),
        ToolCallDelta(0, "call_1", "calc", "{"),
        ToolCallDelta(0, "call_1", "calc", "}"),
        ToolCallDone(0, "call_1", "calc", "{}"),
        # Call 2 never had its own ".done" events: the final event finishes it, exactly once.
        ToolCallDone(1, "call_2", "calc", "{}"),
        Completed("r", "completed"),
    ]


def test_responses_sparse_argument_deltas_belong_to_the_last_call():
    events = feed(
        ResponsesStreamTranslator(),
        {"type": "response.output_item.added", "item": {"type": "function_call", "name": "f"}},
        {"type": "response.function_call_arguments.delta", "delta": '{"a":1}'},
        {"type": "response.completed", "response": {"id": "r"}},
    )
    assert events == [
        ToolCallDelta(0, None, "f", ""),
        ToolCallDelta(0, None, "f", '{"a":1}'),
        ToolCallDone(0, "", "f", '{"a":1}'),
        Completed("r", "completed"),
    ]


def test_responses_function_call_done_only_by_output_item_done():
    item = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
    events = feed(
        ResponsesStreamTranslator(),
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    )
    assert events == [ToolCallDelta(0, "c", "f", "{}"), ToolCallDone(0, "c", "f", "{}")]


def test_responses_incomplete_reports_reason():
    events = feed(
        ResponsesStreamTranslator(),
        {
            "type": "response.incomplete",
            "response": {
                "id": "r",
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
                "usage": RESPONSES_USAGE,
            },
        },
    )
    assert events[-2:] == [EXPECTED_USAGE, Completed("r", "incomplete", "max_tokens")]


def test_responses_failed_reports_upstream_message_and_code():
    events = feed(
        ResponsesStreamTranslator(),
        {"type": "response.created", "response": {"id": "r"}},
        {
            "type": "response.failed",
            "response": {
                "id": "r",
                "status": "failed",
                "error": {"code": "server_error", "message": "The model crashed."},
                "usage": CHAT_USAGE,
            },
        },
    )
    assert events == [
        Started("r", None),
        EXPECTED_USAGE,
        Failed("The model crashed.", "upstream", code="server_error"),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down."},
        {"type": "error", "error": {"code": "rate_limit_exceeded", "message": "Slow down."}},
    ],
)
def test_responses_error_event(payload):
    assert feed(ResponsesStreamTranslator(), payload) == [
        Failed("Slow down.", "upstream", code="rate_limit_exceeded")
    ]


def test_responses_type_falls_back_to_sse_event_name():
    translator = ResponsesStreamTranslator()
    message = SSEMessage("response.output_text.delta", json.dumps({"delta": "x"}))
    assert translator.feed(message) == [TextDelta("x")]
    failed = SSEMessage("response.failed", json.dumps({"response": {"id": "r"}}))
    assert isinstance(translator.feed(failed)[-1], Failed)


def test_responses_unknown_events_and_fields_are_ignored():
    events = feed(
        ResponsesStreamTranslator(),
        {"type": "response.queued", "response": {}},
        {"type": "response.web_search_call.searching", "item_id": "x"},
        {"type": "response.output_text.delta", "delta": "ok", "brand_new_field": {"a": [1]}},
        {"type": "response.output_item.added", "item": {"type": "image_generation_call"}},
        [1, 2],
    )
    assert events[0] == TextDelta("ok")
    # A JSON value that is not an event object cannot be read as one.
    assert events[1:] == [Failed(responses_api.MALFORMED_MESSAGE, "protocol")]


def test_responses_malformed_json_is_a_protocol_failure():
    events = feed(ResponsesStreamTranslator(), "{not json")
    assert events == [Failed(responses_api.MALFORMED_MESSAGE, "protocol")]
    assert "malformed" in events[0].message


def test_responses_done_text_without_deltas_is_relayed():
    events = feed(
        ResponsesStreamTranslator(),
        {"type": "response.output_text.done", "item_id": "m", "content_index": 0, "text": "Whole"},
    )
    assert events == [TextDelta("Whole")]


def test_responses_completed_with_only_final_output_is_relayed():
    response = {
        "id": "r",
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Late"}]}],
    }
    events = feed(ResponsesStreamTranslator(), {"type": "response.completed", "response": response})
    assert events == [TextDelta("Late"), Completed("r", "completed")]


def test_responses_completed_with_only_final_function_calls_is_relayed():
    response = {
        "id": "r",
        "status": "completed",
        "output": [
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": '{"a":1}'},
        ],
    }
    events = feed(ResponsesStreamTranslator(), {"type": "response.completed", "response": response})
    assert events == [
        ToolCallDone(0, "c1", "f", "{}"),
        ToolCallDone(1, "c2", "g", '{"a":1}'),
        Completed("r", "completed"),
    ]


def test_responses_parse_response_body_like_the_seed():
    body = {
        "id": "resp_abc123",
        "object": "response",
        "created_at": 1700000000,
        "model": "gpt-5.4",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking."}]},
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Quantum computing uses qubits."}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ],
        "usage": CHAT_USAGE,
        "unexpected": True,
    }
    assert responses_api.parse_response(body) == [
        Started("resp_abc123", "gpt-5.4"),
        ReasoningDelta("Thinking."),
        TextDelta("Quantum computing uses qubits."),
        ToolCallDone(0, "c1", "f", "{}"),
        EXPECTED_USAGE,
        Completed("resp_abc123", "completed"),
    ]


def test_responses_parse_response_failed_and_incomplete():
    failed = {"id": "r", "status": "failed", "error": {"message": "Nope.", "code": "x"}}
    assert responses_api.parse_response(failed)[-1] == Failed("Nope.", "upstream", code="x")
    incomplete = {
        "id": "r",
        "status": "incomplete",
        "incomplete_details": {"reason": "content_filter"},
    }
    assert responses_api.parse_response(incomplete)[-1] == Completed(
        "r", "incomplete", "content_filter"
    )


# --- Chat Completions ------------------------------------------------------------------------


def chunk(delta=None, finish_reason=None, *, index=0, **extra):
    choice = {"index": index, "delta": delta or {}, "finish_reason": finish_reason}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice], **extra}


def test_chat_build_request_asks_for_usage():
    body = chat_completions.build_request(
        "m",
        [{"role": "user", "content": "hi"}],
        params={"temperature": 0, "stream_options": {"other": 1}},
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0,
        "stream": True,
        "stream_options": {"other": 1, "include_usage": True},
    }


def test_chat_text_and_reasoning_stream_with_usage_after_finish():
    events = feed(
        ChatStreamTranslator(),
        {**chunk({"role": "assistant", "content": ""}), "model": "deepseek-v4-pro"},
        chunk({"reasoning_content": "Let me think."}),
        chunk({"content": "He"}),
        chunk({"content": None}),
        chunk({"content": "llo"}),
        chunk({}, "stop"),
        {"id": "chatcmpl-1", "choices": [], "usage": CHAT_USAGE},
        "[DONE]",
    )
    assert events == [
        Started("chatcmpl-1", "deepseek-v4-pro"),
        ReasoningDelta("Let me think."),
        TextDelta("He"),
        TextDelta("llo"),
        EXPECTED_USAGE,
        Completed("chatcmpl-1", "completed"),
    ]


def test_chat_minimal_chunks_from_the_seed():
    events = feed(
        ChatStreamTranslator(),
        {"id": "chatcmpl-...", "choices": [{"delta": {"content": "He"}}]},
        {"id": "chatcmpl-...", "choices": [{"delta": {"content": "llo"}}]},
        "[DONE]",
    )
    assert events == [
        Started("chatcmpl-...", None),
        TextDelta("He"),
        TextDelta("llo"),
        Completed("chatcmpl-...", "completed"),
    ]


def test_chat_usage_in_responses_schema():
    events = feed(
        ChatStreamTranslator(),
        chunk({}, "stop"),
        {"id": "chatcmpl-1", "choices": [], "usage": RESPONSES_USAGE},
        "[DONE]",
    )
    assert events[-2:] == [EXPECTED_USAGE, Completed("chatcmpl-1", "completed")]


def test_chat_length_finish_is_incomplete():
    events = feed(ChatStreamTranslator(), chunk({"content": "a"}), chunk({}, "length"), "[DONE]")
    assert events[-1] == Completed("chatcmpl-1", "incomplete", "max_tokens")


def test_chat_tool_call_pieces():
    events = feed(
        ChatStreamTranslator(),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "now"}}]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    assert events[1:] == [
        ToolCallDelta(0, "call_1", "get_weather", ""),
        ToolCallDelta(0, "call_1", "get_weather", '{"city":'),
        ToolCallDelta(0, "call_1", "get_weather", '"Oslo"}'),
        ToolCallDelta(1, "call_2", "now", ""),
        ToolCallDone(0, "call_1", "get_weather", '{"city":"Oslo"}'),
        ToolCallDone(1, "call_2", "now", ""),
        Completed("chatcmpl-1", "completed"),
    ]


def test_chat_only_choice_zero_is_relayed():
    events = feed(
        ChatStreamTranslator(), chunk({"content": "other"}, index=1), chunk({"content": "main"})
    )
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("main")]


def test_chat_interleaved_choices_relay_choice_zero_calls_only():
    def call(index, **function):
        return {"tool_calls": [{"index": 0, "id": f"call_{index}", "function": function}]}

    events = feed(
        ChatStreamTranslator(),
        chunk(call(0, name="calc", arguments="")),
        chunk(call(1, name="calc", arguments=""), index=1),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}, index=1),
        chunk({}, "tool_calls"),
        chunk({}, "tool_calls", index=1),
        {"id": "chatcmpl-1", "choices": [], "usage": CHAT_USAGE},
        "[DONE]",
    )
    assert events == [
        Started("chatcmpl-1", None),
        ToolCallDelta(0, "call_0", "calc", ""),
        ToolCallDelta(0, "call_0", "calc", "{}"),
        ToolCallDone(0, "call_0", "calc", "{}"),
        EXPECTED_USAGE,
        Completed("chatcmpl-1", "completed"),
    ]


def test_chat_parse_response_with_several_choices_reads_choice_zero():
    body = {
        "id": "chatcmpl-2",
        "choices": [
            {"index": 1, "message": {"content": "Second"}, "finish_reason": "stop"},
            {"index": 0, "message": {"content": "First"}, "finish_reason": "stop"},
        ],
        "usage": CHAT_USAGE,
    }
    events = chat_completions.parse_response(body)
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("First")]
    assert events[-2:] == [EXPECTED_USAGE, Completed("chatcmpl-2", "completed")]


def test_chat_unknown_fields_are_ignored():
    events = feed(
        ChatStreamTranslator(),
        chunk({"content": "x", "audio": {"id": "a"}}, system_fingerprint="fp", service_tier="x"),
        {"object": "chat.completion.chunk", "choices": [], "prompt_filter_results": []},
    )
    assert events == [Started("chatcmpl-1", None), TextDelta("x")]


def test_chat_malformed_json_and_error_chunk():
    assert feed(ChatStreamTranslator(), "{oops") == [
        Failed(responses_api.MALFORMED_MESSAGE, "protocol")
    ]
    events = feed(
        ChatStreamTranslator(), {"error": {"message": "Overloaded.", "code": "overloaded"}}
    )
    assert events == [Failed("Overloaded.", "upstream", code="overloaded")]


def test_chat_close_completes_only_after_finish_reason():
    cut = ChatStreamTranslator()
    feed(cut, chunk({"content": "partial"}))
    assert cut.close() == []  # the client turns this into a "cut off" failure

    no_done = ChatStreamTranslator()
    feed(no_done, chunk({}, "stop"), {"id": "chatcmpl-1", "choices": [], "usage": CHAT_USAGE})
    assert no_done.close() == [EXPECTED_USAGE, Completed("chatcmpl-1", "completed")]
    assert no_done.close() == []


def test_chat_parse_response_body_like_the_seed():
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 123,
        "model": "gpt-5.4",
        "choices": [
            {
                "index": 0,
                "message": {
                    "content": "Hi, I am a model.",
                    "reasoning_content": "Short intro.",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": CHAT_USAGE,
        "system_fingerprint": "fp",
    }
    assert chat_completions.parse_response(body) == [
        Started("chatcmpl-9", "gpt-5.4"),
        ReasoningDelta("Short intro."),
        TextDelta("Hi, I am a model."),
        ToolCallDone(0, "c", "f", "{}"),
        EXPECTED_USAGE,
        Completed("chatcmpl-9", "completed"),
    ]
