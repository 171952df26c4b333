"""The thread websocket: who may connect, streaming, stop, several viewers, reconnect mid-turn."""

import asyncio
import json
import re

import pytest

from chat.markdown import render_markdown
from chat.models import Turn
from chat.services import generation
from tests.ws import ORIGIN, finished, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


async def test_anonymous_socket_is_refused(thread):
    connected, code = await socket(thread.pk, ORIGIN).connect()
    assert not connected and code == 4401


async def test_another_users_thread_is_refused(thread, other_user, cookie_of):
    connected, code = await socket(thread.pk, ORIGIN, await cookie_of(other_user)).connect()
    assert not connected and code == 4403


async def test_foreign_origin_is_refused(thread, user, cookie_of):
    ws = socket(thread.pk, (b"origin", b"https://evil.example"), await cookie_of(user))
    connected, _ = await ws.connect()
    assert not connected


async def test_message_streams_in_pieces_and_finishes(thread, user, cookie_of):
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    await ws.send_to(json.dumps({"action": "send", "message": "Stream please #chunks=60 #delay=5"}))
    messages = await receive_until(ws, r'data-status="completed"')
    turn = await Turn.objects.aget(thread=thread)
    created = next(m for m in messages if 'id="turns" hx-swap-oob="beforeend"' in m)
    assert "Stream please" in created and 'class="stop"' in created  # Stop replaces Send
    deltas = [m for m in messages if f'id="turn-{turn.pk}-tail" hx-swap-oob="innerHTML"' in m]
    assert len(deltas) >= 3  # the answer arrived in pieces, not at once
    final = messages[-1]
    assert re.search(finished(turn.pk), final) and 'class="primary send"' in final
    assert "Answer completed." in final  # the polite live region, announced once
    assert "first token" in final and "tokens" in final
    await ws.disconnect()


async def test_refused_message_shows_an_error_and_stores_nothing(thread, user, cookie_of):
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    await ws.send_to(json.dumps({"action": "send", "message": "   "}))
    reply = await ws.receive_from(timeout=5)
    assert 'id="composer-error"' in reply and "Type a message first." in reply
    await ws.send_to("{not json")
    assert "could not be read" in await ws.receive_from(timeout=5)
    assert not await Turn.objects.filter(thread=thread).aexists()
    await ws.disconnect()


async def test_stop_over_the_socket_keeps_the_partial_answer(thread, user, cookie_of):
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    await ws.send_to(json.dumps({"action": "send", "message": "long #chunks=500 #delay=10"}))
    await receive_until(ws, r'-tail" hx-swap-oob="innerHTML"><')  # some text has arrived
    await ws.send_to(json.dumps({"action": "stop"}))
    messages = await receive_until(ws, r'data-status="cancelled"')
    assert "Stopped." in messages[-1]
    turn = await Turn.objects.aget(thread=thread)
    assert turn.status == Turn.Status.CANCELLED and turn.output_text
    await ws.disconnect()


async def test_two_tabs_both_see_the_stream(thread, user, cookie_of):
    cookie = await cookie_of(user)
    first, second = socket(thread.pk, ORIGIN, cookie), socket(thread.pk, ORIGIN, cookie)
    await first.connect()
    await second.connect()
    await first.send_to(json.dumps({"message": "for both #chunks=30 #delay=5"}))
    for ws in (first, second):
        messages = await receive_until(ws, r'data-status="completed"')
        assert any("for both" in m for m in messages)
        assert sum('-tail" hx-swap-oob' in m for m in messages) >= 2
        await ws.disconnect()


def _answer_parts(message: str, turn_id: int) -> tuple[str, str] | None:
    """(blocks, tail) of a message that replaces or appends to the turn's answer."""
    replaced = re.search(
        rf'<div id="turn-{turn_id}-answer">(.*?)</div><div id="turn-{turn_id}-tail">(.*?)</div>',
        message,
        re.S,
    )
    if replaced:
        return replaced.group(1), replaced.group(2)
    appended = re.search(
        rf'<div id="turn-{turn_id}-answer" hx-swap-oob="beforeend">(.*?)</div>'
        rf'(?=<div id="turn-{turn_id}-tail")',
        message,
        re.S,
    )
    tail = re.search(
        rf'<div id="turn-{turn_id}-tail" hx-swap-oob="innerHTML">(.*?)</div>', message, re.S
    )
    if tail:
        return (appended.group(1) if appended else ""), tail.group(1)
    return None


async def test_reconnect_mid_turn_gets_text_so_far_then_live_with_nothing_lost_or_doubled(
    thread, user, cookie_of
):
    cookie = await cookie_of(user)
    first = socket(thread.pk, ORIGIN, cookie)
    await first.connect()
    await first.send_to(json.dumps({"message": "reconnect test #chunks=300 #delay=5"}))
    await receive_until(first, r'-tail" hx-swap-oob="innerHTML"><')
    await first.disconnect()  # the tab closes; the answer keeps being generated

    turn = await Turn.objects.aget(thread=thread)
    await receive_until_blocks(turn.pk)
    second = socket(thread.pk, ORIGIN, cookie)
    await second.connect()
    snapshot = await second.receive_from(timeout=5)
    blocks, _tail = _answer_parts(snapshot, turn.pk)
    assert blocks  # the text so far arrives first
    while True:
        message = await second.receive_from(timeout=10)
        if re.search(finished(turn.pk), message):
            break
        parts = _answer_parts(message, turn.pk)
        if parts:
            blocks += parts[0]
    await second.disconnect()
    stored = await Turn.objects.aget(pk=turn.pk)
    assert stored.status == Turn.Status.COMPLETED
    # Every finished block arrived exactly once and in order: a prefix of the whole answer.
    whole = render_markdown(stored.output_text)
    assert whole.startswith(blocks) and len(blocks) > len(whole) // 2


async def receive_until_blocks(turn_id: int) -> None:
    """Wait until the running answer has some finished blocks, so the snapshot is not trivial."""
    for _ in range(300):
        snapshot = generation.running_snapshot(turn_id)
        if snapshot and len(snapshot["blocks"]) >= 2:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the answer never produced finished blocks")


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_reasoning_streams_into_its_own_collapsed_section(thread, user, cookie_of, api):
    thread.api = api
    await thread.asave()
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    await ws.send_to(json.dumps({"message": "think first #reasoning #chunks=30 #delay=5"}))
    messages = await receive_until(ws, r'data-status="completed"')
    turn = await Turn.objects.aget(thread=thread)
    live = [m for m in messages if f'id="turn-{turn.pk}-reasoning-tail" hx-swap-oob' in m]
    assert live, "reasoning did not stream"
    final = messages[-1]
    assert '<details class="reasoning">' in final and "<summary>Reasoning</summary>" in final
    assert "reasoning tokens" in final and turn.reasoning_tokens > 0
    await ws.disconnect()
