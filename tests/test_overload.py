"""A saturated process: turns past MAX_RUNNING_TURNS wait in line with their place shown, a full
line refuses new messages, a waiting turn can be stopped, and a slow viewer fails no turn."""

import asyncio
import json

import pytest
from channels.layers import get_channel_layer

from chat import live
from chat.models import Turn
from chat.services.turns import admission, launch, registry
from tests.ws import ORIGIN, finished, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "keeps the only place #chunks=400 #delay=10"


@pytest.fixture
def one_place(settings):
    settings.MAX_RUNNING_TURNS = 1
    settings.MAX_QUEUED_TURNS = 5
    yield
    assert not admission.process_admission.waiting, "a test left turns waiting in line"


@pytest.fixture
def threads(make_thread, user):
    return [make_thread(user) for _ in range(3)]


async def _open(thread, user, cookie_of):
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    return ws


async def _stop_and_wait(turn_id: int) -> None:
    await registry.stop_turn(turn_id)
    await registry.wait_for(turn_id)


async def test_turns_past_the_cap_wait_with_their_place_shown_then_run_in_order(
    one_place, threads, user, cookie_of
):
    busy, second, third = threads
    running = await launch.start_turn(user, busy.pk, "short but first #chunks=40 #delay=10")
    ws2 = await _open(second, user, cookie_of)
    ws3 = await _open(third, user, cookie_of)
    await ws2.send_to(json.dumps({"action": "send", "message": "second #chunks=5"}))
    await receive_until(ws2, "Waiting — next in line")
    await ws3.send_to(json.dumps({"action": "send", "message": "third #chunks=5"}))
    await receive_until(ws3, "Waiting — 1 ahead")
    # The first answer ends: the second starts, the third moves up and then runs too.
    await receive_until(ws3, "Waiting — next in line")
    second_turn = await Turn.objects.aget(thread=second)
    third_turn = await Turn.objects.aget(thread=third)
    await receive_until(ws2, finished(second_turn.pk))
    await receive_until(ws3, finished(third_turn.pk))
    assert (await Turn.objects.aget(pk=running.pk)).status == Turn.Status.COMPLETED
    second_turn, third_turn = [await Turn.objects.aget(pk=t.pk) for t in (second_turn, third_turn)]
    assert "second" in second_turn.output_text and "third" in third_turn.output_text
    # In order: the third waited for the second's place.
    assert second_turn.finished_at <= third_turn.finished_at
    await ws2.disconnect()
    await ws3.disconnect()


async def test_a_full_line_refuses_the_message_and_creates_nothing(
    one_place, settings, threads, user, cookie_of
):
    settings.MAX_QUEUED_TURNS = 1
    busy, waiting, refused = threads
    first = await launch.start_turn(user, busy.pk, LONG)
    queued = await launch.start_turn(user, waiting.pk, "in line")
    ws = await _open(refused, user, cookie_of)
    await ws.send_to(json.dumps({"action": "send", "message": "one too many"}))
    notice = await receive_until(ws, 'id="composer-error"')
    assert "The server is busy: 1 answers are already waiting." in notice[-1]
    assert "Nothing was sent" in notice[-1]
    assert not await Turn.objects.filter(thread=refused).aexists()
    await ws.disconnect()
    for turn in (queued, first):
        await _stop_and_wait(turn.pk)


async def test_stopping_a_waiting_turn_takes_it_out_of_the_line(
    one_place, threads, user, cookie_of
):
    busy, second, _ = threads
    first = await launch.start_turn(user, busy.pk, LONG)
    ws = await _open(second, user, cookie_of)
    await ws.send_to(json.dumps({"action": "send", "message": "never mind"}))
    await receive_until(ws, "Waiting — next in line")
    queued = await Turn.objects.aget(thread=second)
    await ws.send_to(json.dumps({"action": "stop"}))
    await receive_until(ws, finished(queued.pk, "cancelled"))
    assert admission.process_admission.position(queued.pk) is None
    stored = await Turn.objects.aget(pk=queued.pk)
    assert stored.status == Turn.Status.CANCELLED and stored.output_text == ""
    # The first answer was not disturbed and still holds the only place.
    assert (await Turn.objects.aget(pk=first.pk)).status == Turn.Status.IN_PROGRESS
    assert admission.process_admission.running == {first.pk}
    await ws.disconnect()
    await _stop_and_wait(first.pk)


async def test_a_viewer_that_does_not_keep_up_fails_no_turn(settings, threads, user, cookie_of):
    settings.STREAM_COALESCE_SECONDS = 0  # a delta per chunk: far more than a channel holds
    thread = threads[0]
    layer = get_channel_layer()
    # A viewer that never reads (a stuck socket): its channel fills up, then misses messages.
    stuck = await layer.new_channel()
    await layer.group_add(live.thread_group(thread.pk), stuck)
    slow = await _open(thread, user, cookie_of)  # a socket nobody reads until the end
    turn = await launch.start_turn(user, thread.pk, "flood #chunks=300 #delay=2")
    await asyncio.wait_for(registry.wait_for(turn.pk), 30)
    stored = await Turn.objects.aget(pk=turn.pk)
    assert stored.status == Turn.Status.COMPLETED and stored.error == ""
    assert layer.channels[stuck].qsize() == layer.get_capacity(stuck)  # it did fall behind
    messages = await receive_until(slow, finished(turn.pk))
    assert "flood" in messages[-1]
    await slow.disconnect()
    await layer.group_discard(live.thread_group(thread.pk), stuck)


class _Line:
    """Turns in one process's line without sockets: each holds its place until released."""

    def __init__(self, line: admission.Admission) -> None:
        self.line = line
        self.release: dict[int, asyncio.Event] = {}
        self.tasks: dict[int, asyncio.Task] = {}

    def add(self, turn_id: int, *, announced: bool = True) -> asyncio.Event:
        shown = asyncio.Event()
        if announced:
            shown.set()
        self.release[turn_id] = asyncio.Event()

        async def hold() -> None:
            async with self.line.slot(turn_id, turn_id, shown):
                await self.release[turn_id].wait()

        self.tasks[turn_id] = asyncio.create_task(hold())
        return shown


@pytest.fixture
def published(monkeypatch):
    sent: list[tuple[int, int]] = []

    async def record(thread_id, message, layer=None):
        sent.append((message["turn_id"], message["ahead"]))

    monkeypatch.setattr(admission.live, "publish", record)
    monkeypatch.setattr(admission, "POSITION_UPDATE_SECONDS", 0.05, raising=False)
    return sent


async def test_places_are_shown_in_one_pass_not_one_message_per_admission(settings, published):
    settings.MAX_RUNNING_TURNS = 1
    settings.MAX_QUEUED_TURNS = 100
    line = _Line(admission.Admission())
    for turn_id in range(31):  # one running, thirty waiting
        line.add(turn_id)
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert sorted(published) == [(turn_id, turn_id - 1) for turn_id in range(1, 31)]
    published.clear()
    for turn_id in range(20):  # twenty answers end within one pass
        line.release[turn_id].set()
        await line.tasks[turn_id]
    await asyncio.sleep(0.2)
    # A pass at once, then one per interval: a couple of messages per turn (not twenty), the
    # last one with its place now.
    for turn_id in range(21, 31):
        shown = [ahead for shown_id, ahead in published if shown_id == turn_id]
        assert 1 <= len(shown) <= 3 and shown[-1] == turn_id - 21
    assert len(published) <= 30
    for turn_id in range(20, 31):
        line.release[turn_id].set()
    await asyncio.gather(*line.tasks.values())


async def test_far_back_in_line_the_place_is_updated_when_it_moved_by_a_tenth(
    settings, published
):
    settings.MAX_RUNNING_TURNS = 1
    settings.MAX_QUEUED_TURNS = 500
    line = _Line(admission.Admission())
    for turn_id in range(301):
        line.add(turn_id)
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    published.clear()
    line.release[0].set()
    await line.tasks[0]
    await asyncio.sleep(0.2)
    updated = dict(published)
    assert updated[2] == 0 and updated[10] == 8  # near the front: every move
    assert 300 not in updated  # 299 → 298 ahead: not worth a message yet
    for turn_id in range(1, 301):
        line.release[turn_id].set()
    await asyncio.gather(*line.tasks.values())


async def test_an_ending_answer_does_not_wait_for_another_turns_announcement(settings, published):
    settings.MAX_RUNNING_TURNS = 1
    line = _Line(admission.Admission())
    line.add(1)
    await asyncio.sleep(0)
    line.add(2)
    told = line.add(3, announced=False)  # its sockets have not been told yet
    await asyncio.sleep(0.01)
    line.release[1].set()
    await asyncio.wait_for(line.tasks[1], 5)
    line.release[2].set()
    await asyncio.wait_for(line.tasks[2], 5)
    told.set()
    line.release[3].set()
    await asyncio.wait_for(line.tasks[3], 5)
