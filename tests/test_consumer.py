"""The thread websocket: who may connect, streaming, stop, several viewers, reconnect mid-turn."""

import asyncio
import json
import re

import pytest

from chat import live
from chat.markdown import render_markdown
from chat.models import Turn
from chat.services.turns import launch, registry
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
    # The stopped article still shows the partial answer.
    assert render_markdown(turn.output_text) in messages[-1]
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


async def _blocks_until_finished(ws, turn_id: int) -> str:
    """The answer blocks a socket receives until the turn's finished article arrives."""
    blocks = ""
    while True:
        message = await ws.receive_from(timeout=10)
        if re.search(finished(turn_id), message):
            return blocks
        parts = _answer_parts(message, turn_id)
        if parts:
            blocks += parts[0]


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
    blocks += await _blocks_until_finished(second, turn.pk)
    await second.disconnect()
    stored = await Turn.objects.aget(pk=turn.pk)
    assert stored.status == Turn.Status.COMPLETED
    # Every finished block arrived exactly once and in order: a prefix of the whole answer.
    whole = render_markdown(stored.output_text)
    assert whole.startswith(blocks) and len(blocks) > len(whole) // 2


async def receive_until_blocks(turn_id: int) -> None:
    """Wait until the running answer has some finished blocks, so the snapshot is not trivial."""
    for _ in range(300):
        snapshot = registry.running_snapshot(turn_id)
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


def _offset(messages: list[str], turn_id: int) -> tuple[int, int] | None:
    """The last offset marker the browser got: how many blocks of the answer it holds."""
    found = None
    for message in messages:
        for match in re.finditer(
            rf'id="turn-{turn_id}-offset" hidden data-blocks="(\d+)" data-reasoning="(\d+)"',
            message,
        ):
            found = (int(match.group(1)), int(match.group(2)))
    return found


async def test_reconnect_with_offsets_gets_only_what_was_missed(thread, user, cookie_of):
    """A dropped network: the browser reports what it holds; the server sends the rest only."""
    cookie = await cookie_of(user)
    first = socket(thread.pk, ORIGIN, cookie)
    await first.connect()
    await first.send_to(json.dumps({"message": "resume test #chunks=400 #delay=5"}))
    received, held = await receive_until(first, r'id="turns" hx-swap-oob="beforeend"'), ""
    turn = await Turn.objects.aget(thread=thread)
    while (_offset(received, turn.pk) or (0, 0))[0] < 2:
        received.append(await first.receive_from(timeout=10))
        parts = _answer_parts(received[-1], turn.pk)
        if parts:
            held += parts[0]
    blocks, reasoning = _offset(received, turn.pk)
    await first.disconnect()
    await asyncio.sleep(0.2)  # more is generated while the browser is away

    second = socket(
        thread.pk, ORIGIN, cookie, query=f"leaf={turn.pk}&resume={turn.pk}:{blocks}:{reasoning}"
    )
    assert (await second.connect())[0]
    catch_up = await second.receive_from(timeout=5)
    assert "<article" not in catch_up  # not the whole answer again: only what was missed
    rest = _answer_parts(catch_up, turn.pk)[0] + await _blocks_until_finished(second, turn.pk)
    await second.disconnect()
    whole = render_markdown((await Turn.objects.aget(pk=turn.pk)).output_text)
    assert rest, "nothing was missed? the pause was meant to miss some blocks"
    assert whole.startswith(held + rest)  # no gap, nothing twice
    assert len(held + rest) > len(whole) // 2


async def test_reconnect_after_the_answer_finished_shows_it_finished(thread, user, cookie_of):
    cookie = await cookie_of(user)
    first = socket(thread.pk, ORIGIN, cookie)
    await first.connect()
    await first.send_to(json.dumps({"message": "short #chunks=5"}))
    await receive_until(first, r'id="turns" hx-swap-oob="beforeend"')
    turn = await Turn.objects.aget(thread=thread)
    await first.disconnect()
    await registry.wait_for(turn.pk)
    second = socket(thread.pk, ORIGIN, cookie, query=f"leaf={turn.pk}&resume={turn.pk}:0:0")
    await second.connect()
    assert re.search(finished(turn.pk), await second.receive_from(timeout=5))
    await second.disconnect()


async def test_reconnect_after_new_turns_redraws_the_conversation(thread, user, cookie_of):
    cookie = await cookie_of(user)
    older = await launch.start_turn(user, thread.pk, "one #chunks=3")
    await registry.wait_for(older.pk)
    newer = await launch.start_turn(user, thread.pk, "two #chunks=3")
    await registry.wait_for(newer.pk)
    ws = socket(thread.pk, ORIGIN, cookie, query=f"leaf={older.pk}")  # it saw only the first
    await ws.connect()
    redraw = await ws.receive_from(timeout=5)
    assert 'id="turns"' in redraw and f'id="turn-{newer.pk}"' in redraw
    await ws.disconnect()


async def test_a_viewer_sees_a_dead_workers_turn_marked_interrupted(
    thread, user, cookie_of, settings
):
    from datetime import timedelta

    from django.utils import timezone

    settings.TURN_STALE_SECONDS = 5
    turn = await Turn.objects.acreate(
        thread=thread,
        author=user,
        user_text="q",
        output_text="half of it",
        runner_channel="turn-runner.gone!x",
        heartbeat_at=timezone.now() - timedelta(seconds=60),
    )
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    assert "half of it" in await ws.receive_from(timeout=5)  # the last checkpoint, at once
    assert await registry.reap_stale_turns() == 1
    message = (await receive_until(ws, finished(turn.pk, "interrupted")))[-1]
    assert "half of it" in message and 'class="retry"' in message and "Retry" in message
    await ws.disconnect()


def _delta(turn_id: int, start: int, blocks: list[str], tail: str = "<p>t</p>\n") -> dict:
    return {
        "type": "turn.delta",
        "turn_id": turn_id,
        "start": start,
        "blocks": blocks,
        "tail": tail,
        "reasoning_start": 0,
        "reasoning_blocks": [],
        "reasoning_tail": "",
    }


def test_the_shared_delta_is_the_one_a_socket_holding_the_blocks_before_it_builds():
    from chat import live

    message = _delta(7, 2, ["<p>c</p>\n"]) | {
        "reasoning_start": 1,
        "reasoning_blocks": ["<p>r</p>\n"],
        "reasoning_tail": "<p>…</p>\n",
        "tools_html": "<section>tool</section>",
    }
    shared = live.delta_html(message, 2, 1)
    assert shared == (
        '<div id="turn-7-answer" hx-swap-oob="beforeend"><p>c</p>\n</div>'
        '<div id="turn-7-tail" hx-swap-oob="innerHTML"><p>t</p>\n</div>'
        '<div id="turn-7-tools" hx-swap-oob="innerHTML"><section>tool</section></div>'
        '<div id="turn-7-reasoning" hx-swap-oob="beforeend"><p>r</p>\n</div>'
        '<div id="turn-7-reasoning-tail" hx-swap-oob="innerHTML"><p>…</p>\n</div>'
        '<span id="turn-7-offset" hidden data-blocks="3" data-reasoning="2"'
        ' hx-swap-oob="true"></span>'
    )
    # A socket that already holds the new block gets only the tail and the marker.
    holder = live.SocketOffsets()
    holder.shows(7, (3, 2))
    assert "<p>c</p>" not in holder.take_delta(message | {"type": "turn.delta", "html": shared})
    assert holder.known[7] == (3, 2)


async def test_sockets_send_the_runners_fragment_or_trim_their_own(
    thread, user, cookie_of, monkeypatch
):
    import channels.consumer
    from channels.layers import get_channel_layer

    hops = []

    async def counted() -> None:
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    hops.clear()  # connecting did need the database
    layer, group = get_channel_layer(), live.thread_group(thread.pk)
    first = _delta(99, 0, ["<p>a</p>\n", "<p>b</p>\n"]) | {"html": "<b>shared</b>"}
    await layer.group_send(group, first)
    assert await ws.receive_from(timeout=5) == "<b>shared</b>"  # holds 0 blocks: as built
    overlapping = _delta(99, 1, ["<p>b</p>\n", "<p>c</p>\n"]) | {"html": "<b>not for me</b>"}
    await layer.group_send(group, overlapping)
    trimmed = await ws.receive_from(timeout=5)
    assert "<p>c</p>" in trimmed and "<p>b</p>" not in trimmed and "not for me" not in trimmed
    assert 'data-blocks="3"' in trimmed
    assert hops == []  # deltas are rendered without a trip to the database thread
    await ws.disconnect()


async def test_the_runner_renders_the_new_and_the_finished_turn_once_for_every_socket(
    thread, user, cookie_of
):
    from asgiref.sync import sync_to_async

    from chat import fragments

    cookie = await cookie_of(user)
    first, second = socket(thread.pk, ORIGIN, cookie), socket(thread.pk, ORIGIN, cookie)
    assert (await first.connect())[0] and (await second.connect())[0]
    await first.send_to(json.dumps({"action": "send", "message": "Both #chunks=20 #delay=5"}))
    seen = [await receive_until(ws, r'data-status="completed"') for ws in (first, second)]
    turn = await Turn.objects.aget(thread=thread)
    for messages in seen:
        created = next(m for m in messages if 'id="turns" hx-swap-oob="beforeend"' in m)
        assert messages.index(created) < min(
            i for i, m in enumerate(messages) if f'id="turn-{turn.pk}-tail" hx-swap-oob' in m
        )  # the turn arrives before any of its deltas
        assert 'data-status="in_progress"' in created and "Both" in created
        assert f'id="turn-{turn.pk}-offset" hidden data-blocks="0" data-reasoning="0"' in created
        # What the runner rendered from memory is what the stored turn renders.
        assert messages[-1] == await sync_to_async(fragments.finished_turn)(turn)
    assert seen[0][-1] == seen[1][-1]
    await first.disconnect()
    await second.disconnect()


@pytest.mark.parametrize("slow_after", ["plan", "checks"])
async def test_the_first_token_does_not_wait_behind_other_work_in_the_database_thread(
    thread, user, cookie_of, monkeypatch, slow_after
):
    """Once a turn is planned, nothing before its first delta needs the database thread, which
    every socket and runner of the worker share: a slow job queued there right after the plan
    (another user's export, say) must not hold up the answer appearing. Nor one queued during
    the socket's own session and access checks: they run in the plan's hop, not one before it.
    With Redis this short answer usually ends before its first delta is published (each publish
    takes round trips): that delta must still go out, not wait for the end, which is stored in
    the database thread."""
    import contextvars
    import time

    from asgiref.sync import sync_to_async

    from chat.services import session_binding
    from chat.services.turns import planning

    loop = asyncio.get_running_loop()
    blocked: list[asyncio.Future] = []
    armed = False

    def then_block(work):
        def work_then_block(*args, **kwargs):
            done = work(*args, **kwargs)
            if armed and not blocked:
                # Queued on the database thread while it is busy: next in line there.
                slow = sync_to_async(lambda: time.sleep(3))
                loop.call_soon_threadsafe(
                    lambda: blocked.append(asyncio.ensure_future(slow())),
                    context=contextvars.Context(),
                )
            return done

        return work_then_block

    if slow_after == "plan":
        monkeypatch.setattr(planning, "plan_turn", then_block(planning.plan_turn))
    else:
        monkeypatch.setattr(
            session_binding, "session_problem", then_block(session_binding.session_problem)
        )
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    armed = True
    sent = loop.time()
    await ws.send_to(json.dumps({"action": "send", "message": "quick #chunks=5 #delay=0"}))
    await receive_until(ws, r'-tail" hx-swap-oob="innerHTML"', wait=10)
    first_delta = loop.time() - sent
    await asyncio.gather(*blocked)
    await receive_until(ws, r'data-status="completed"')
    await ws.disconnect()
    assert blocked, "the slow job was queued"
    assert first_delta < 2, f"the first delta waited {first_delta:.1f} s for the database thread"


@pytest.fixture
def frames_written_at_once(monkeypatch):
    """Deltas written without a task or coroutine, as under Daphne (``live_local.frame_writer``):
    here straight into the test communicator's output queue (its ``send`` is that queue's
    ``put``)."""
    from chat import live_local

    def writer(send):
        queue = send.__self__
        return lambda text: queue.put_nowait({"type": "websocket.send", "text": text})

    monkeypatch.setattr(live_local, "frame_writer", writer)


async def test_a_viewer_in_another_language_gets_the_new_turn_before_any_of_its_text(
    thread, user, cookie_of, frames_written_at_once, monkeypatch
):
    """The runner's deltas go straight to the sockets of its process; a socket still drawing
    the new turn itself (its page is in another language than the sender's, so the runner's
    fragment is not for it) must get them after that turn, not before: a delta for a turn not
    yet on the page would be lost."""
    import time

    from django.utils import translation

    from chat import fragments

    appended_turn = fragments.appended_turn

    def slow_in_chinese(*args, **kwargs):
        if translation.get_language() == "zh-hans":
            time.sleep(0.5)  # the viewer's own drawing outlasts the first deltas
        return appended_turn(*args, **kwargs)

    monkeypatch.setattr(fragments, "appended_turn", slow_in_chinese)
    cookie = await cookie_of(user)
    sender = socket(thread.pk, ORIGIN, cookie)
    viewer = socket(thread.pk, ORIGIN, cookie, (b"accept-language", b"zh-hans"))
    assert (await sender.connect())[0] and (await viewer.connect())[0]
    await sender.send_to(json.dumps({"action": "send", "message": "fast #chunks=60 #delay=5"}))
    await receive_until(sender, r'data-status="completed"')
    messages = await receive_until(viewer, r'data-status="completed"')
    turn = await Turn.objects.aget(thread=thread)
    created = [i for i, m in enumerate(messages) if 'id="turns" hx-swap-oob="beforeend"' in m]
    delta = f'id="turn-{turn.pk}-tail" hx-swap-oob="innerHTML"'
    deltas = [i for i, m in enumerate(messages) if delta in m]
    assert created and deltas, messages
    assert created[0] < deltas[0], "a delta reached the page before its turn"
    assert re.search(r"[\u4e00-\u9fff]", messages[created[0]])  # drawn in the viewer's language
    streamed = "".join(
        parts[0] for m in messages[:-1] if (parts := _answer_parts(m, turn.pk)) is not None
    )
    whole = render_markdown(turn.output_text)
    assert whole.startswith(streamed), "a block was lost or doubled"
    for ws in (sender, viewer):
        await ws.disconnect()


async def test_viewers_on_the_runners_worker_see_the_answer_while_the_channel_layer_is_down(
    thread, user, cookie_of, monkeypatch
):
    """Redis unreachable for longer than a publish waits: the sockets on the runner's own
    worker still see the answer stream in (they no longer get it through the channel layer)."""
    from channels.layers import get_channel_layer

    from chat.channel_layer import ChannelLayerUnavailable

    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    await ws.receive_presence()  # connected while the layer was still there
    layer = get_channel_layer()

    def unreachable(*args, **kwargs):
        raise ChannelLayerUnavailable("Redis unreachable")

    async def unreachable_async(*args, **kwargs):
        unreachable()

    monkeypatch.setattr(layer, "group_send", unreachable_async)
    if hasattr(layer, "group_send_except"):
        monkeypatch.setattr(layer, "group_send_except", unreachable)
    await ws.send_to(json.dumps({"action": "send", "message": "while down #chunks=30 #delay=5"}))
    messages = await receive_until(ws, r'data-status="completed"')
    turn = await Turn.objects.aget(thread=thread)
    assert sum(f'id="turn-{turn.pk}-tail"' in m for m in messages) >= 2
    assert render_markdown(turn.output_text) in messages[-1]
    await ws.disconnect()
