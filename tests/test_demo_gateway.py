"""The real GatewayClient against the demo gateway over real HTTP (Daphne in a subprocess)."""

import asyncio
import json
import time
from contextlib import aclosing

import httpx
import pytest

from chat.upstream import chat_completions, responses_api
from chat.upstream.client import CUT_MESSAGE, ClientPool, GatewayClient, GatewayError, Timeouts
from chat.upstream.events import (
    Completed,
    Failed,
    ReasoningDelta,
    Started,
    TextDelta,
    Usage,
)
from demo_gateway import make_app
from tests.gateway_fixtures import free_port


@pytest.fixture
async def client(demo_gateway_url, demo_api_key):
    client = GatewayClient(demo_gateway_url, demo_api_key, timeouts=Timeouts(2, 5, 30))
    yield client
    await client.aclose()


async def collect(stream):
    async with aclosing(stream) as events:
        return [event async for event in events]


def text(events, kind=TextDelta):
    return "".join(e.text for e in events if isinstance(e, kind))


def count(events, kind=TextDelta):
    return sum(isinstance(e, kind) for e in events)


def ask(client, message, model="demo-chat", **kwargs):
    return collect(client.stream_responses(responses_api.build_request(model, message, **kwargs)))


def chat(client, messages, model="demo-chat", params=None):
    body = chat_completions.build_request(model, messages, params=params)
    return collect(client.stream_chat(body))


async def test_list_models(client):
    models = await client.list_models()
    assert models == sorted(models)
    assert {"demo-chat", "demo-reasoner"} <= set(models)


async def test_list_models_with_wrong_key_raises_a_clear_error(demo_gateway_url):
    client = GatewayClient(demo_gateway_url + "/", "sk-wrong")
    with pytest.raises(GatewayError) as raised:
        await client.list_models()
    await client.aclose()
    assert raised.value.kind == "http" and raised.value.status_code == 401
    assert "API key" in str(raised.value)


async def test_streamed_answer_arrives_in_many_deltas_then_usage_and_completed(client):
    events = await ask(client, "Explain server-sent events")
    started, usage, completed = events[0], events[-2], events[-1]
    assert isinstance(started, Started) and started.response_id.startswith("resp_")
    assert started.model == "demo-chat"
    assert count(events) > 50
    answer = text(events)
    assert "Explain server-sent events" in answer
    assert "This is turn 1 of the conversation." in answer
    assert "```python" in answer and "| Turn | 1 |" in answer
    assert usage == Usage(3, count(events), 3 + count(events), 0, 0)
    assert completed == Completed(started.response_id, "completed")


async def test_directives_set_chunk_count_and_pacing(client):
    began = time.monotonic()
    events = await ask(client, "Short one #chunks=6 #delay=80")
    assert count(events) == 6
    assert time.monotonic() - began >= 0.35  # five pauses between six chunks
    assert "#chunks" not in text(events)


async def test_previous_response_id_continues_the_conversation(client, demo_requests):
    first = await ask(client, "First question")
    second = await ask(client, "Second question", previous_response_id=first[-1].response_id)
    third = await ask(client, "Third question", previous_response_id=second[-1].response_id)
    assert "This is turn 2 of the conversation." in text(second)
    assert "This is turn 3 of the conversation." in text(third)
    # The remembered history is reported as cached input.
    assert second[-2].cached_tokens > 0
    sent = demo_requests()
    assert [body["input"] for body in sent] == [
        "First question",
        "Second question",
        "Third question",
    ]
    assert sent[-1]["previous_response_id"] == second[-1].response_id
    assert sent[-1]["stream"] is True


async def test_unknown_previous_response_id_fails_recognizably(client):
    events = await ask(client, "Hello again", previous_response_id="resp_forgotten")
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, Failed)
    assert failed.kind == "http" and failed.status_code == 400
    assert failed.unknown_previous_response
    assert "resp_forgotten" in failed.message


async def test_store_false_responses_are_not_remembered(client):
    first = await ask(client, "Forget me", params={"store": False})
    assert isinstance(first[-1], Completed)
    events = await ask(client, "Still there?", previous_response_id=first[-1].response_id)
    assert events[-1].unknown_previous_response


async def test_wrong_api_key_fails_with_401(demo_gateway_url):
    client = GatewayClient(demo_gateway_url, "sk-wrong")
    events = await ask(client, "hi")
    await client.aclose()
    assert len(events) == 1
    failed = events[0]
    assert (failed.kind, failed.status_code, failed.code) == ("http", 401, "invalid_api_key")
    assert "refused the API key (401)" in failed.message


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [("429", 429, "rate-limiting"), ("500", 500, "internal error"), ("503", 503, "unavailable")],
)
async def test_http_faults(client, fault, status, words):
    events = await ask(client, f"fail #fault={fault}")
    assert len(events) == 1
    failed = events[0]
    assert (failed.kind, failed.status_code) == ("http", status)
    assert words in failed.message and f"({status})" in failed.message


async def test_cut_stream_keeps_partial_text_and_says_cut_off(client):
    events = await ask(client, "cut me #fault=cut")
    assert count(events) == 3
    assert events[-1] == Failed(CUT_MESSAGE, "protocol")
    assert not any(isinstance(e, Completed | Usage) for e in events)


async def test_malformed_event_fails_after_partial_text(client):
    events = await ask(client, "garble #fault=malformed")
    assert count(events) == 3
    assert events[-1].kind == "protocol" and "malformed" in events[-1].message


async def test_silent_gateway_times_out_between_chunks(demo_gateway_url, demo_api_key):
    client = GatewayClient(demo_gateway_url, demo_api_key, timeouts=Timeouts(read=0.5))
    began = time.monotonic()
    events = await ask(client, "hang #fault=timeout")
    assert time.monotonic() - began < 3
    assert count(events) == 2
    assert events[-1].kind == "timeout" and "stopped responding" in events[-1].message
    # The same client answers the next request.
    assert isinstance((await ask(client, "and now?"))[-1], Completed)
    await client.aclose()


async def test_total_timeout_stops_a_steady_but_endless_answer(demo_gateway_url, demo_api_key):
    client = GatewayClient(demo_gateway_url, demo_api_key, timeouts=Timeouts(read=5, total=0.6))
    began = time.monotonic()
    events = await ask(client, "long #chunks=200 #delay=20")
    await client.aclose()
    assert time.monotonic() - began < 2
    assert 5 < count(events) < 200
    assert events[-1].kind == "timeout" and "longer than" in events[-1].message


async def test_closed_port_is_a_connection_failure():
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = GatewayClient(url, "key")
    events = await ask(client, "anyone?")
    with pytest.raises(GatewayError) as raised:
        await client.list_models()
    await client.aclose()
    assert len(events) == 1
    assert events[0].kind == "connection" and f"Could not reach the gateway at {url}" in (
        events[0].message
    )
    assert raised.value.kind == "connection"


async def test_unknown_model_fails_with_404(client):
    events = await ask(client, "hi", model="no-such-model")
    assert (events[-1].kind, events[-1].status_code, events[-1].code) == (
        "http",
        404,
        "model_not_found",
    )


async def test_chat_completions_stream(client, demo_requests):
    messages = [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me more"},
    ]
    events = await chat(client, messages)
    assert isinstance(events[0], Started) and events[0].response_id.startswith("chatcmpl-")
    assert count(events) > 50
    assert "This is turn 2 of the conversation." in text(events)
    assert "Tell me more" in text(events)
    # Demo tokens are words: 2 + 1 + 1 + 3 in the messages.
    assert events[-2].output_tokens == count(events) and events[-2].input_tokens == 7
    assert events[-1] == Completed(events[0].response_id, "completed")
    assert demo_requests()[-1]["stream_options"] == {"include_usage": True}


async def test_reasoning_streams_before_the_answer(client):
    for events in (
        await ask(client, "Think first", model="demo-reasoner"),
        await chat(client, [{"role": "user", "content": "Think first #reasoning"}]),
    ):
        kinds = [type(e) for e in events if isinstance(e, TextDelta | ReasoningDelta)]
        first_text = kinds.index(TextDelta)
        assert first_text > 5 and set(kinds[:first_text]) == {ReasoningDelta}
        assert ReasoningDelta not in kinds[first_text:]
        assert "turn 1" in text(events, ReasoningDelta)
        usage = events[-2]
        assert usage.reasoning_tokens == count(events, ReasoningDelta)
        assert usage.output_tokens == count(events) + count(events, ReasoningDelta)


@pytest.mark.parametrize(
    ("endpoint", "directive", "schema_key"),
    [
        ("responses", "", "input_tokens"),
        ("responses", "#usage=chat", "prompt_tokens"),
        ("chat/completions", "", "prompt_tokens"),
        ("chat/completions", "#usage=responses", "input_tokens"),
    ],
)
async def test_both_usage_schemas(
    client, demo_gateway_url, demo_api_key, endpoint, directive, schema_key
):
    message = f"Count these words {directive}"
    if endpoint == "responses":
        body = {"model": "demo-reasoner", "input": message}
        events = await ask(client, message, model="demo-reasoner")
    else:
        body = {"model": "demo-reasoner", "messages": [{"role": "user", "content": message}]}
        events = await chat(client, body["messages"], model="demo-reasoner")
    # The wire really carries the requested schema…
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {demo_api_key}"}) as raw:
        answer = (await raw.post(f"{demo_gateway_url}/{endpoint}", json=body)).json()
    assert schema_key in answer["usage"]
    # …and the client reads either one into the same numbers.
    usage = events[-2]
    words = len(message.split())
    reasoning = count(events, ReasoningDelta)
    assert usage == Usage(
        words, count(events) + reasoning, words + count(events) + reasoning, 0, reasoning
    )


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_output_limit_ends_incomplete(client, api):
    if api == "responses":
        events = await ask(client, "A long answer", params={"max_output_tokens": 10})
    else:
        events = await chat(
            client, [{"role": "user", "content": "A long answer"}], params={"max_tokens": 10}
        )
    assert count(events) == 10
    assert events[-1].status == "incomplete" and events[-1].reason == "max_tokens"


async def test_non_streamed_bodies_match_the_stream(client, demo_gateway_url, demo_api_key):
    streamed = await ask(client, "Same text please", model="demo-reasoner")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {demo_api_key}"}) as raw:
        body = {"model": "demo-reasoner", "input": "Same text please"}
        whole = responses_api.parse_response(
            (await raw.post(f"{demo_gateway_url}/responses", json=body)).json()
        )
        body = {
            "model": "demo-reasoner",
            "messages": [{"role": "user", "content": "Same text please"}],
        }
        whole_chat = chat_completions.parse_response(
            (await raw.post(f"{demo_gateway_url}/chat/completions", json=body)).json()
        )
    for events in (whole, whole_chat):
        assert text(events) == text(streamed)
        assert text(events, ReasoningDelta) == text(streamed, ReasoningDelta)
        assert events[-2] == streamed[-2]
        assert events[-1].status == "completed"


async def test_stopping_early_closes_the_stream_and_the_client_stays_usable(client):
    began = time.monotonic()
    seen = 0
    async with aclosing(
        client.stream_responses(responses_api.build_request("demo-chat", "#chunks=500 #delay=20"))
    ) as events:
        async for event in events:
            seen += isinstance(event, TextDelta)
            if seen == 3:
                break
    assert time.monotonic() - began < 2  # did not wait for the remaining ~10 s of answer
    assert isinstance((await ask(client, "next"))[-1], Completed)


async def test_cancelling_the_consumer_task_closes_the_stream(client):
    first_delta = asyncio.Event()

    async def consume():
        body = responses_api.build_request("demo-chat", "#chunks=500 #delay=20")
        async for event in client.stream_responses(body):
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance((await ask(client, "next"))[-1], Completed)


async def test_many_concurrent_streams_share_one_client(client):
    results = await asyncio.gather(*(ask(client, f"Question {n} #chunks=40") for n in range(40)))
    assert all(count(events) == 40 and isinstance(events[-1], Completed) for events in results)
    assert len({events[-1].response_id for events in results}) == 40


async def test_demo_mounted_under_a_prefix_in_process():
    app = make_app(api_key="k")
    transport = httpx.ASGITransport(app=app)
    client = GatewayClient("http://testserver/demo/v1/", "k", transport=transport)
    assert "demo-chat" in await client.list_models()
    events = await ask(client, "Mounted #chunks=4")
    assert count(events) == 4 and isinstance(events[-1], Completed)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
        missing = await raw.get("/demo/v2/models", headers={"Authorization": "Bearer k"})
        unauthorized = await raw.get("/demo/v1/_demo/requests")
    await client.aclose()
    assert missing.status_code == 404 and "error" in missing.json()
    assert unauthorized.status_code == 401


@pytest.mark.serial  # timed
@pytest.mark.parametrize("message", ["#chunks=1000 #delay=10", "#fault=timeout"])
async def test_demo_stops_promptly_when_the_client_hangs_up(message):
    app = make_app()
    sent = []
    hung_up = asyncio.Event()
    body = {"model": "demo-chat", "input": message, "stream": True}
    requests = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(event):
        sent.append(event)
        if len(sent) == 12:
            hung_up.set()

    async def hang_up_later():
        await asyncio.sleep(0.2)
        hung_up.set()

    timer = asyncio.create_task(hang_up_later())
    scope = {"type": "http", "method": "POST", "path": "/v1/responses", "headers": []}
    began = time.monotonic()
    await asyncio.wait_for(app(scope, receive, send), 2)
    assert time.monotonic() - began < 0.5
    assert len(sent) < 20  # it stopped writing instead of streaming 1000 chunks
    timer.cancel()
    await asyncio.gather(timer, return_exceptions=True)
    assert asyncio.all_tasks() == {asyncio.current_task()}  # its disconnect watcher is gone too


async def test_pool_reuses_a_client_and_replaces_it_without_breaking_running_streams(
    demo_gateway_url, demo_api_key
):
    pool = ClientPool()
    old = pool.get("provider-1", demo_gateway_url, demo_api_key)
    assert pool.get("provider-1", demo_gateway_url + "/", demo_api_key) is old
    assert pool.get("provider-2", demo_gateway_url, demo_api_key) is not old

    body = responses_api.build_request("demo-chat", "#chunks=30 #delay=5")
    async with aclosing(old.stream_responses(body)) as running:
        assert isinstance(await anext(running), Started)
        # The admin changes the key while an answer is streaming on the old client.
        new = pool.get("provider-1", demo_gateway_url, "sk-rotated")
        assert new is not old and pool.get("provider-1", demo_gateway_url, "sk-rotated") is new
        rest = [event async for event in running]
    assert count(rest) == 30 and isinstance(rest[-1], Completed)
    await asyncio.sleep(0.05)
    assert old.is_closed  # closed once its last stream ended
    await pool.close_all()
    assert new.is_closed
