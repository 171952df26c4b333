"""The tool-call loop, for both APIs, against the demo gateway over HTTP: built-in tools run on
the server, other tools wait for the user, bad arguments go back to the model, steps are capped."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import ToolDefinition, Turn
from chat.routing import websocket_application
from chat.services import tools
from chat.services.turns import launch, registry
from tests.ws import HOST, ORIGIN, finished, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


@pytest.fixture(params=["responses", "chat"])
def api(request):
    return request.param


@pytest.fixture
def thread(make_thread, user, api):
    thread = make_thread(user)
    thread.api = api
    thread.save()
    calculator = tools.BUILTINS["calculator"]
    thread.tools.add(
        ToolDefinition.objects.create(
            owner=user,
            name=calculator.name,
            description=calculator.description,
            parameters=calculator.parameters,
            builtin="calculator",
        ),
        ToolDefinition.objects.create(owner=user, name="get_weather", parameters=WEATHER),
    )
    return thread


async def run(user, thread, text) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


async def test_builtin_tool_runs_and_the_model_answers_with_its_result(user, thread, demo_requests):
    turn = await run(user, thread, "What is 6*7? #call=calculator")
    assert turn.status == Turn.Status.COMPLETED
    [call] = turn.tool_calls
    assert call["name"] == "calculator" and call["status"] == "done" and call["result"] == "42"
    assert "42" in turn.output_text
    second = demo_requests()[-1]
    if thread.api == "responses":
        assert second["previous_response_id"]
        assert second["input"] == [
            {"type": "function_call_output", "call_id": call["call_id"], "output": "42"}
        ]
    else:
        assert second["messages"][-2]["tool_calls"][0]["id"] == call["call_id"]
        assert second["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call["call_id"],
            "content": "42",
        }
    assert {t["name"] if "name" in t else t["function"]["name"] for t in second["tools"]} == {
        "calculator",
        "get_weather",
    }
    assert turn.total_tokens > 0  # both steps' usage


async def test_parallel_calls_are_all_answered(user, thread):
    turn = await run(user, thread, "two at once #call=calculator #call=calculator")
    assert turn.status == Turn.Status.COMPLETED
    assert len(turn.tool_calls) == 2
    assert len({c["call_id"] for c in turn.tool_calls}) == 2
    assert all(c["result"] == "42" for c in turn.tool_calls)


@pytest.mark.parametrize(
    ("directive", "says"), [("#badargs", "not valid JSON"), ("#wrongargs", "")]
)
async def test_invalid_arguments_go_back_to_the_model_as_an_error(user, thread, directive, says):
    turn = await run(user, thread, f"broken #call=calculator {directive}")
    assert turn.status == Turn.Status.COMPLETED  # the turn does not crash
    [call] = turn.tool_calls
    assert call["status"] == "error" and says in call["result"]
    assert call["result"] in turn.output_text  # the model was told


async def test_a_tool_without_implementation_waits_for_the_user(user, thread, demo_requests):
    turn = await run(user, thread, "weather? #call=get_weather")
    assert turn.status == Turn.Status.AWAITING_TOOL
    [call] = turn.tool_calls
    assert call["status"] == "awaiting" and json.loads(call["arguments"]) == {"city": "demo"}
    await launch.answer_tool_call(user, turn.pk, call["call_id"], "Sunny, 21 °C")
    await registry.wait_for(turn.pk)
    done = await Turn.objects.aget(pk=turn.pk)
    assert done.status == Turn.Status.COMPLETED
    assert "Sunny, 21 °C" in done.output_text
    assert done.tool_calls[0]["status"] == "done"


async def test_a_rejected_call_is_reported_to_the_model(user, thread):
    turn = await run(user, thread, "weather? #call=get_weather")
    await launch.answer_tool_call(user, turn.pk, turn.tool_calls[0]["call_id"], None)
    await registry.wait_for(turn.pk)
    done = await Turn.objects.aget(pk=turn.pk)
    assert done.status == Turn.Status.COMPLETED
    assert done.tool_calls[0]["status"] == "rejected" and "declined" in done.output_text


async def test_answers_are_refused_for_other_users_and_twice(user, other_user, thread):
    from chat.services.refusals import TurnRejected

    turn = await run(user, thread, "weather? #call=get_weather")
    call_id = turn.tool_calls[0]["call_id"]
    with pytest.raises(TurnRejected):
        await launch.answer_tool_call(other_user, turn.pk, call_id, "hacked")
    await launch.answer_tool_call(user, turn.pk, call_id, "ok")
    with pytest.raises(TurnRejected, match="already answered"):
        await launch.answer_tool_call(user, turn.pk, call_id, "again")
    await registry.wait_for(turn.pk)


async def test_the_loop_stops_at_the_step_limit(user, thread, settings):
    settings.TOOL_MAX_STEPS = 3
    turn = await run(user, thread, "forever #call=calculator #loop")
    assert turn.status == Turn.Status.INCOMPLETE
    assert "3 tool steps" in turn.error
    assert len(turn.tool_calls) == 3


async def test_tool_cards_stream_over_the_socket(user, thread, client):
    await sync_to_async(client.force_login)(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    ws = WebsocketCommunicator(
        websocket_application,
        f"/ws/threads/{thread.pk}/",
        headers=[(b"origin", b"http://127.0.0.1"), HOST, cookie],
    )
    await ws.connect()
    await ws.send_to(json.dumps({"message": "weather? #call=get_weather"}))
    seen = []
    while True:
        message = await ws.receive_from(timeout=10)
        seen.append(message)
        if 'data-status="awaiting_tool"' in message and "article" in message:
            break
    assert any('-tools" hx-swap-oob="innerHTML"' in m and "get_weather" in m for m in seen)
    final = seen[-1]
    assert "Result of get_weather" in final and "Send result" in final and "Reject call" in final
    turn = await Turn.objects.aget(thread=thread)
    await ws.send_to(
        json.dumps(
            {
                "action": "tool_result",
                "turn_id": str(turn.pk),
                "call_id": turn.tool_calls[0]["call_id"],
                "result": "Rain",
            }
        )
    )
    while 'data-status="completed"' not in (message := await ws.receive_from(timeout=10)):
        pass
    assert "Rain" in message
    await ws.disconnect()


async def test_a_forced_tool_choice_applies_to_the_first_step_only(user, thread, demo_requests):
    thread.params = {"tool_choice": "function:calculator"}
    await thread.asave()
    turn = await run(user, thread, "force it")
    assert turn.status == Turn.Status.COMPLETED and "42" in turn.output_text
    first, second = demo_requests()[-2:]
    assert first["tool_choice"] != "auto" and "tool_choice" not in second


async def test_a_follow_up_after_the_step_limit_still_works(user, thread, settings, demo_requests):
    settings.TOOL_MAX_STEPS = 2
    limited = await run(user, thread, "forever #call=calculator #loop")
    assert limited.status == Turn.Status.INCOMPLETE
    after = await run(user, thread, "something else")
    assert after.status == Turn.Status.COMPLETED
    assert "previous_response_id" not in demo_requests()[-1]


async def test_a_resumed_turn_is_redrawn_live_before_its_first_delta(
    user, thread, cookie_of, monkeypatch
):
    """A turn paused for a tool answer is on screen without a live answer (no offset marker).
    Each socket must redraw it live, with the marker, before the resumed turn's deltas update
    that marker (else the browser logs ``htmx:oobErrorNoTarget`` for every delta), however slow
    the announcement."""
    publish = registry.publish_update

    async def slow_publish(turn_id: int, *, finished: bool = False) -> None:
        await asyncio.sleep(0.2)
        await publish(turn_id, finished=finished)

    monkeypatch.setattr(registry, "publish_update", slow_publish)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    await ws.send_to(json.dumps({"message": "weather? #call=get_weather #chunks=60 #delay=10"}))
    await receive_until(ws, 'data-status="awaiting_tool"')
    turn = await Turn.objects.aget(thread=thread)
    answer = {
        "action": "tool_result",
        "turn_id": str(turn.pk),
        "call_id": turn.tool_calls[0]["call_id"],
        "result": "Rain",
    }
    await ws.send_to(json.dumps(answer))
    messages = await receive_until(ws, finished(turn.pk))
    redraws = [
        i
        for i, m in enumerate(messages)
        if f'<article hx-swap-oob="true" id="turn-{turn.pk}"' in m
        and f'<span id="turn-{turn.pk}-offset"' in m
    ]
    delta = f'id="turn-{turn.pk}-tail" hx-swap-oob="innerHTML"'
    deltas = [i for i, m in enumerate(messages) if delta in m]
    assert redraws and deltas, messages
    assert redraws[0] < deltas[0]
    await ws.disconnect()
