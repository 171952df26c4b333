"""Function-tool calling and ``n`` choices: the real GatewayClient against the demo gateway over
real HTTP (Daphne in a subprocess), in both wire formats."""

import json
from contextlib import aclosing

import httpx
import pytest

from chat.upstream import chat_completions, responses_api
from chat.upstream.client import CUT_MESSAGE, GatewayClient, Timeouts
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
from chat.upstream.sse import SSEParser

CALCULATOR = {
    "name": "calculator",
    "description": "Evaluate an arithmetic expression.",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}
WEATHER = {
    "name": "weather",
    "description": "The forecast for a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
            "detailed": {"type": "boolean"},
            "ratio": {"type": ["number", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object"},
        },
        "required": ["city"],
    },
}


def responses_tools(*specs):
    return [{"type": "function", **spec} for spec in specs]


def chat_tools(*specs):
    return [{"type": "function", "function": spec} for spec in specs]


@pytest.fixture
async def client(demo_gateway_url, demo_api_key):
    client = GatewayClient(demo_gateway_url, demo_api_key, timeouts=Timeouts(2, 5, 30))
    yield client
    await client.aclose()


@pytest.fixture
async def raw(demo_gateway_url, demo_api_key):
    headers = {"Authorization": f"Bearer {demo_api_key}"}
    async with httpx.AsyncClient(base_url=demo_gateway_url + "/", headers=headers) as raw:
        yield raw


async def collect(stream):
    async with aclosing(stream) as events:
        return [event async for event in events]


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def text(events):
    return "".join(e.text for e in of(events, TextDelta))


def ask(client, input, *, tools=(CALCULATOR,), previous=None, model="demo-chat", **params):
    params = {"tools": responses_tools(*tools), **params} if tools else params
    body = responses_api.build_request(model, input, previous_response_id=previous, params=params)
    return collect(client.stream_responses(body))


def chat(client, messages, *, tools=(CALCULATOR,), model="demo-chat", **params):
    params = {"tools": chat_tools(*tools), **params} if tools else params
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return collect(
        client.stream_chat(chat_completions.build_request(model, messages, params=params))
    )


def outputs(calls, results):
    """Responses input items handing ``results`` back for ``calls`` (ToolCallDone events)."""
    return [
        {"type": "function_call_output", "call_id": call.call_id, "output": result}
        for call, result in zip(calls, results, strict=True)
    ]


def chat_follow_up(user_text, calls, results):
    """Chat messages for the second step: the user message, the assistant's calls, results."""
    return [
        {"role": "user", "content": user_text},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls
            ],
        },
        *(
            {"role": "tool", "tool_call_id": call.call_id, "content": result}
            for call, result in zip(calls, results, strict=True)
        ),
    ]


def assert_one_call_streamed(events, name, arguments):
    """Started, the deltas (announcement, then pieces), one ToolCallDone, Usage, Completed."""
    assert isinstance(events[0], Started)
    deltas, done = of(events, ToolCallDelta), of(events, ToolCallDone)
    assert len(done) == 1 and not of(events, TextDelta)
    call = done[0]
    assert (call.index, call.name, call.arguments) == (0, name, arguments)
    assert call.call_id.startswith("call_")
    assert deltas[0] == ToolCallDelta(0, call.call_id, name, "")
    assert len(deltas) >= 3  # the announcement and several pieces
    assert all((d.index, d.call_id, d.name) == (0, call.call_id, name) for d in deltas)
    assert "".join(d.arguments_delta for d in deltas) == arguments
    assert events.index(call) > events.index(deltas[-1])
    usage, completed = events[-2], events[-1]
    assert isinstance(usage, Usage) and usage.output_tokens == len(deltas)
    assert completed == Completed(events[0].response_id, "completed")
    return call


# --- Responses API ---------------------------------------------------------------------------


async def test_responses_call_then_result_then_text(client, demo_requests):
    first = await ask(client, "What is six times seven? #call=calculator")
    call = assert_one_call_streamed(first, "calculator", '{"expression": "6*7"}')
    assert json.loads(call.arguments) == {"expression": "6*7"}

    second = await ask(
        client, outputs([call], ["42"]), previous=first[-1].response_id, tools=(CALCULATOR,)
    )
    assert not of(second, ToolCallDelta | ToolCallDone)
    assert text(second) == "The tool calculator returned: 42."
    assert second[-1] == Completed(second[0].response_id, "completed")
    # The follow-up carried no user message: the gateway remembered the one behind the id.
    sent = demo_requests()[-1]
    assert sent["input"] == [
        {"type": "function_call_output", "call_id": call.call_id, "output": "42"}
    ]
    assert sent["previous_response_id"] == first[-1].response_id
    assert second[-2].cached_tokens > 0

    # And the conversation goes on from the answer as usual.
    third = await ask(client, "Thanks", previous=second[-1].response_id)
    assert "This is turn 2 of the conversation." in text(third)


async def test_responses_wire_events_for_a_call(raw):
    body = {
        "model": "demo-chat",
        "input": "#call=calculator",
        "tools": responses_tools(CALCULATOR),
        "stream": True,
    }
    response = await raw.post("responses", json=body)
    parser = SSEParser()
    messages = parser.feed(response.content) + parser.close()
    payloads = [json.loads(m.data) for m in messages]
    kinds = [p["type"] for p in payloads]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    added = payloads[2]
    assert added["output_index"] == 0
    item = added["item"]
    assert item["type"] == "function_call" and item["id"].startswith("fc_")
    assert (item["status"], item["arguments"], item["name"]) == ("in_progress", "", "calculator")
    deltas = [p for p in payloads if p["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) > 1
    assert all(d["item_id"] == item["id"] and d["output_index"] == 0 for d in deltas)
    arguments = "".join(d["delta"] for d in deltas)
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert payloads[-3]["arguments"] == arguments and payloads[-3]["item_id"] == item["id"]
    done_item = payloads[-2]["item"]
    assert done_item == {**item, "status": "completed", "arguments": arguments}
    final = payloads[-1]["response"]
    assert final["output"] == [done_item] and final["status"] == "completed"
    assert final["usage"]["output_tokens"] == len(deltas) + 1
    assert final["tools"] == body["tools"]


async def test_responses_parallel_calls(client):
    first = await ask(
        client, "Both please #call=calculator #call=weather", tools=(CALCULATOR, WEATHER)
    )
    calls = of(first, ToolCallDone)
    assert [(c.index, c.name) for c in calls] == [(0, "calculator"), (1, "weather")]
    assert len({c.call_id for c in calls}) == 2
    assert {d.index for d in of(first, ToolCallDelta)} == {0, 1}
    second = await ask(
        client,
        outputs(calls, ["42", '{"sky": "clear",\n "temp": 21}']),
        previous=first[-1].response_id,
        tools=(CALCULATOR, WEATHER),
    )
    assert text(second) == (
        "The tool calculator returned: 42.\n"
        'The tool weather returned: {"sky": "clear", "temp": 21}.'
    )


async def test_responses_parallel_tool_calls_false_keeps_the_first(client):
    events = await ask(
        client,
        "#call=weather #call=calculator",
        tools=(CALCULATOR, WEATHER),
        parallel_tool_calls=False,
    )
    assert [c.name for c in of(events, ToolCallDone)] == ["weather"]


async def test_arguments_follow_the_schema(client):
    events = await ask(client, "#call=weather", tools=(WEATHER,))
    (call,) = of(events, ToolCallDone)
    assert json.loads(call.arguments) == {
        "city": "demo",
        "days": 3,
        "units": "metric",
        "detailed": True,
        "ratio": 2.5,
        "tags": [],
        "extra": {},
    }


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_bad_and_wrong_arguments(client, api):
    send = ask if api == "responses" else chat
    bad = of(await send(client, "#call=calculator #badargs"), ToolCallDone)[0]
    assert bad.arguments == '{"expression": "6*7"'
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad.arguments)
    wrong = of(await send(client, "#call=weather #wrongargs", tools=(WEATHER,)), ToolCallDone)[0]
    assert json.loads(wrong.arguments) == {
        "city": 42,
        "days": "demo",
        "units": 42,
        "detailed": "demo",
        "ratio": "demo",
        "tags": "demo",
        "extra": "demo",
    }
    missing = await send(client, "#call=calculator #wrongargs=missing")
    assert of(missing, ToolCallDone)[0].arguments == "{}"


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_tool_choice(client, api):
    send = ask if api == "responses" else chat
    tools = (CALCULATOR, WEATHER)

    def named(name):
        if api == "responses":
            return {"type": "function", "name": name}
        return {"type": "function", "function": {"name": name}}

    none = await send(client, "No tools #call=calculator", tools=tools, tool_choice="none")
    assert not of(none, ToolCallDelta | ToolCallDone) and "No tools" in text(none)
    auto = await send(client, "No directive", tools=tools)
    assert not of(auto, ToolCallDone) and "No directive" in text(auto)
    required = await send(client, "Anything", tools=tools, tool_choice="required")
    assert [c.name for c in of(required, ToolCallDone)] == ["calculator"]
    forced = await send(client, "#call=calculator", tools=tools, tool_choice=named("weather"))
    assert [c.name for c in of(forced, ToolCallDone)] == ["weather"]
    unknown_tool = await send(client, "#call=nope", tools=tools)
    assert not of(unknown_tool, ToolCallDone) and isinstance(unknown_tool[-1], Completed)

    missing = await send(client, "x", tools=tools, tool_choice=named("nope"))
    assert (missing[-1].kind, missing[-1].status_code) == ("http", 400)
    assert "nope" in missing[-1].message


async def test_responses_loop_calls_again_after_every_result(client):
    events = await ask(client, "Forever #call=calculator #loop")
    seen = []
    for step in range(3):
        (call,) = of(events, ToolCallDone)
        assert call.name == "calculator" and call.call_id not in seen
        seen.append(call.call_id)
        events = await ask(client, outputs([call], [str(step)]), previous=events[-1].response_id)
    assert len(of(events, ToolCallDone)) == 1 and not of(events, TextDelta)


async def test_responses_unknown_call_id_fails_with_400(client):
    first = await ask(client, "#call=calculator")
    (call,) = of(first, ToolCallDone)
    wrong = [{"type": "function_call_output", "call_id": "call_unknown", "output": "1"}]
    events = await ask(client, wrong, previous=first[-1].response_id)
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, Failed)
    assert (failed.kind, failed.status_code) == ("http", 400)
    assert "No tool call found for function call output with call_id call_unknown" in (
        failed.message
    )
    assert not failed.unknown_previous_response
    # Like OpenAI, a new user message cannot skip the results either.
    skipped = await ask(client, "Never mind", previous=first[-1].response_id)
    assert skipped[-1].status_code == 400
    assert f"No tool output found for function call {call.call_id}." in skipped[-1].message
    # Neither call was consumed: the right result still continues the conversation.
    done = await ask(client, outputs([call], ["42"]), previous=first[-1].response_id)
    assert text(done) == "The tool calculator returned: 42."


async def test_responses_full_history_without_previous_response_id(client):
    first = await ask(client, "#call=calculator", store=False)
    (call,) = of(first, ToolCallDone)
    history = [
        {"role": "user", "content": "#call=calculator"},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        *outputs([call], ["42"]),
    ]
    events = await ask(client, history, store=False)
    assert text(events) == "The tool calculator returned: 42."


async def test_responses_reasoning_comes_before_the_call(client):
    events = await ask(client, "#call=calculator", model="demo-reasoner")
    kinds = [type(e) for e in events if isinstance(e, ReasoningDelta | ToolCallDelta)]
    first_call = kinds.index(ToolCallDelta)
    assert first_call > 0 and set(kinds[:first_call]) == {ReasoningDelta}
    assert "calculator" in "".join(e.text for e in of(events, ReasoningDelta))
    # The call is call 0 even though the reasoning item is output item 0.
    assert of(events, ToolCallDone)[0].index == 0


async def test_responses_non_streamed_call_and_result(raw):
    body = {"model": "demo-chat", "input": "#call=calculator", "tools": responses_tools(CALCULATOR)}
    first = (await raw.post("responses", json=body)).json()
    (item,) = first["output"]
    assert item["type"] == "function_call" and item["status"] == "completed"
    events = responses_api.parse_response(first)
    assert of(events, ToolCallDone) == [
        ToolCallDone(0, item["call_id"], "calculator", '{"expression": "6*7"}')
    ]
    follow_up = {
        "model": "demo-chat",
        "previous_response_id": first["id"],
        "input": [{"type": "function_call_output", "call_id": item["call_id"], "output": "42"}],
    }
    second = (await raw.post("responses", json=follow_up)).json()
    assert text(responses_api.parse_response(second)) == "The tool calculator returned: 42."


async def test_cut_during_arguments(client):
    for events in (
        await ask(client, "#call=calculator #fault=cut"),
        await chat(client, "#call=calculator #fault=cut"),
    ):
        assert events[-1] == Failed(CUT_MESSAGE, "protocol")
        assert not of(events, ToolCallDone)
        assert len(of(events, ToolCallDelta)) == 4  # the announcement and 3 pieces


async def test_chat_format_tools_sent_to_responses_are_rejected(client):
    params = {"tools": chat_tools(CALCULATOR)}
    body = responses_api.build_request("demo-chat", "#call=calculator", params=params)
    events = await collect(client.stream_responses(body))
    assert (events[-1].status_code, events[-1].code) == (400, "missing_required_parameter")
    assert "tools[0].name" in events[-1].message


# --- Chat Completions ------------------------------------------------------------------------


async def test_chat_call_then_result_then_text(client, demo_requests):
    question = "What is six times seven? #call=calculator"
    first = await chat(client, question)
    call = assert_one_call_streamed(first, "calculator", '{"expression": "6*7"}')

    second = await chat(client, chat_follow_up(question, [call], ["42"]))
    assert not of(second, ToolCallDelta | ToolCallDone)
    assert text(second) == "The tool calculator returned: 42."
    assert second[-1].status == "completed"
    assert demo_requests()[-1]["messages"][1]["tool_calls"][0]["id"] == call.call_id


async def test_chat_wire_chunks_for_parallel_calls(raw):
    body = {
        "model": "demo-chat",
        "messages": [{"role": "user", "content": "#call=calculator #call=weather"}],
        "tools": chat_tools(CALCULATOR, WEATHER),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    answer = (await raw.post("chat/completions", json=body)).text
    lines = [line[6:] for line in answer.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    headers = [d["tool_calls"][0] for d in deltas if "id" in d.get("tool_calls", [{}])[0]]
    assert [(h["index"], h["type"], h["function"]) for h in headers] == [
        (0, "function", {"name": "calculator", "arguments": ""}),
        (1, "function", {"name": "weather", "arguments": ""}),
    ]
    pieces = [
        d["tool_calls"][0] for d in deltas if "tool_calls" in d and "id" not in d["tool_calls"][0]
    ]
    assert all(set(p) == {"index", "function"} for p in pieces) and len(pieces) > 2
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls" and set(finish[:-1]) == {None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_chat_parallel_calls_and_results(client):
    question = "#call=calculator #call=weather"
    first = await chat(client, question, tools=(CALCULATOR, WEATHER))
    calls = of(first, ToolCallDone)
    assert [(c.index, c.name) for c in calls] == [(0, "calculator"), (1, "weather")]
    assert len({c.call_id for c in calls}) == 2
    second = await chat(
        client, chat_follow_up(question, calls, ["42", "sunny"]), tools=(CALCULATOR, WEATHER)
    )
    assert text(second) == "The tool calculator returned: 42.\nThe tool weather returned: sunny."


async def test_chat_loop_calls_again_after_every_result(client):
    question = "#call=calculator #loop"
    messages = [{"role": "user", "content": question}]
    seen = []
    for step in range(3):
        events = await chat(client, messages)
        (call,) = of(events, ToolCallDone)
        assert call.call_id not in seen
        seen.append(call.call_id)
        # The app resends the whole loop so far: every step's calls and results.
        messages += chat_follow_up(question, [call], [str(step)])[1:]
    events = await chat(client, messages)
    assert len(of(events, ToolCallDone)) == 1 and not of(events, TextDelta)


async def test_chat_unknown_or_missing_tool_results_fail_with_400(client):
    question = "#call=calculator"
    (call,) = of(await chat(client, question), ToolCallDone)
    wrong = chat_follow_up(question, [call], ["42"])
    wrong[-1]["tool_call_id"] = "call_unknown"
    events = await chat(client, wrong)
    assert len(events) == 1 and (events[0].kind, events[0].status_code) == ("http", 400)
    assert "call_unknown" in events[0].message
    missing = chat_follow_up(question, [call], ["42"])[:-1]
    events = await chat(client, missing)
    assert events[0].status_code == 400 and call.call_id in events[0].message
    orphan = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "x", "content": "1"},
    ]
    events = await chat(client, orphan)
    assert events[0].status_code == 400 and "role 'tool'" in events[0].message


async def test_chat_non_streamed_call(raw):
    body = {
        "model": "demo-chat",
        "messages": [{"role": "user", "content": "#call=calculator"}],
        "tools": chat_tools(CALCULATOR),
    }
    answer = (await raw.post("chat/completions", json=body)).json()
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "calculator", "arguments": '{"expression": "6*7"}'}
    assert of(chat_completions.parse_response(answer), ToolCallDone) == [
        ToolCallDone(0, call["id"], "calculator", '{"expression": "6*7"}')
    ]


async def test_responses_format_tools_sent_to_chat_are_rejected(client):
    params = {"tools": responses_tools(CALCULATOR)}
    body = chat_completions.build_request(
        "demo-chat", [{"role": "user", "content": "hi"}], params=params
    )
    events = await collect(client.stream_chat(body))
    assert events[-1].status_code == 400 and "tools[0].function" in events[-1].message


# --- n choices (Chat Completions) ------------------------------------------------------------


async def test_chat_n_streams_choice_zero_only_and_counts_every_choice(client, raw):
    events = await chat(client, "Two answers please", tools=(), n=2)
    answer = text(events)
    assert answer.startswith("Choice 1 of 2.\n\n## Echo: Two answers please")
    assert "Choice 2 of 2." not in answer
    usage = events[-2]
    assert usage.output_tokens == 2 * len(of(events, TextDelta))
    assert events[-1].status == "completed"

    # The wire carries both choices, interleaved, each with its own index and finish.
    body = {
        "model": "demo-chat",
        "messages": [{"role": "user", "content": "Two answers please"}],
        "n": 2,
        "stream": True,
    }
    lines = (await raw.post("chat/completions", json=body)).text.splitlines()
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    by_index: dict[int, str] = {0: "", 1: ""}
    finishes = []
    for chunk in chunks:
        (choice,) = chunk["choices"]
        by_index[choice["index"]] += choice["delta"].get("content") or ""
        if choice["finish_reason"]:
            finishes.append((choice["index"], choice["finish_reason"]))
    assert by_index[0] == answer
    assert by_index[1] == answer.replace("Choice 1 of 2.", "Choice 2 of 2.")
    assert sorted(finishes) == [(0, "stop"), (1, "stop")]
    assert [c["choices"][0]["index"] for c in chunks[:2]] == [0, 1]  # interleaved


async def test_chat_n_non_streamed_returns_every_choice(raw):
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "Three"}], "n": 3}
    answer = (await raw.post("chat/completions", json=body)).json()
    choices = answer["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    contents = [c["message"]["content"] for c in choices]
    assert [c.split("\n")[0] for c in contents] == [
        "Choice 1 of 3.",
        "Choice 2 of 3.",
        "Choice 3 of 3.",
    ]
    words = sum(len(c.split()) for c in contents)
    assert answer["usage"]["completion_tokens"] == words
    assert text(chat_completions.parse_response(answer)) == contents[0]

    body["tools"] = chat_tools(CALCULATOR)
    body["messages"][0]["content"] = "#call=calculator"
    calls = [
        c["message"]["tool_calls"][0]["id"]
        for c in (await raw.post("chat/completions", json=body)).json()["choices"]
    ]
    assert len(set(calls)) == 3

    body["n"] = 0
    rejected = await raw.post("chat/completions", json=body)
    assert rejected.status_code == 400 and rejected.json()["error"]["param"] == "n"
