"""A turn's life: streamed from the demo gateway over HTTP, stored, continued, failed, stopped."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.models import Thread, Turn
from chat.services.refusals import TurnRejected
from chat.services.turns import launch, registry
from chat.services.turns.runner import TurnRunner
from chat.upstream import network

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


async def run_turn(user, thread, text: str) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


async def test_answer_is_stored_with_usage_and_timings(user, thread):
    turn = await run_turn(user, thread, "Hello there")
    assert turn.status == Turn.Status.COMPLETED
    assert "Hello there" in turn.output_text
    assert turn.response_id
    assert turn.input_tokens > 0 and turn.output_tokens > 0
    assert turn.total_tokens == turn.input_tokens + turn.output_tokens
    assert turn.time_to_first_token_ms is not None
    assert turn.duration_ms >= turn.time_to_first_token_ms
    refreshed = await Thread.objects.aget(pk=thread.pk)
    assert refreshed.title == "Hello there"
    assert refreshed.current_turn_id == turn.pk


async def test_follow_up_sends_only_new_input_with_previous_response_id(
    user, thread, demo_requests
):
    first = await run_turn(user, thread, "First question")
    second = await run_turn(user, thread, "Second question")
    body = demo_requests()[-1]
    assert body["previous_response_id"] == first.response_id
    assert body["input"] == "Second question"
    assert "turn 2 of the conversation" in second.output_text
    assert second.parent_id == first.pk


async def test_forgotten_response_id_is_retried_once_with_full_history(user, thread, demo_requests):
    first = await run_turn(user, thread, "Remember me")
    await Turn.objects.filter(pk=first.pk).aupdate(response_id="resp_forgotten")
    second = await run_turn(user, thread, "Do you?")
    assert second.status == Turn.Status.COMPLETED
    rejected, retried = demo_requests()[-2:]
    assert rejected["previous_response_id"] == "resp_forgotten"
    assert "previous_response_id" not in retried
    assert [item["role"] for item in retried["input"]] == ["user", "assistant", "user"]
    assert retried["input"][0]["content"] == "Remember me"
    assert "turn 2 of the conversation" in second.output_text


async def test_both_usage_schemas_are_stored(user, thread):
    turn = await run_turn(user, thread, "count #usage=chat")
    assert turn.input_tokens > 0 and turn.output_tokens > 0 and turn.total_tokens > 0


async def test_reasoning_is_stored_separately(user, thread):
    turn = await run_turn(user, thread, "think #reasoning")
    assert turn.reasoning_text and turn.reasoning_text not in turn.output_text
    assert turn.reasoning_tokens > 0


@pytest.mark.parametrize(
    ("directive", "says", "keeps_partial"),
    [
        ("#fault=500", "500", False),
        ("#fault=429", "429", False),
        ("#fault=cut", "cut off", True),
        ("#fault=malformed", "malformed", True),
        ("#fault=timeout", "respond", True),
    ],
)
async def test_upstream_failures_are_shown_and_keep_partial_text(
    user, thread, settings, directive, says, keeps_partial
):
    settings.UPSTREAM_READ_TIMEOUT = 0.5
    turn = await run_turn(user, thread, f"please fail {directive}")
    assert turn.status == Turn.Status.FAILED
    assert says in turn.error.lower()
    assert "Traceback" not in turn.error
    assert bool(turn.output_text) is keeps_partial
    assert turn.can_retry
    # The rest keeps working: the next message is answered.
    assert (await run_turn(user, thread, "and now?")).status == Turn.Status.COMPLETED


async def test_wrong_api_key_fails_with_a_clear_message(user, thread, provider):
    provider.set_api_key("sk-wrong-0000")
    await provider.asave()
    turn = await run_turn(user, thread, "hi")
    assert turn.status == Turn.Status.FAILED
    assert "401" in turn.error


async def test_unreachable_gateway_fails_with_a_clear_message(user, thread, provider):
    provider.base_url = "http://127.0.0.1:9/v1"
    await provider.asave()
    turn = await run_turn(user, thread, "hi")
    assert turn.status == Turn.Status.FAILED
    assert "127.0.0.1:9" in turn.error


async def test_stop_keeps_the_partial_answer(user, thread):
    turn = await launch.start_turn(user, thread.pk, "long one #chunks=400 #delay=10")
    for _ in range(200):
        await asyncio.sleep(0.02)
        if len(registry._running[turn.pk].state.text) > 5:
            break
    assert await registry.stop_turn(turn.pk)
    await registry.wait_for(turn.pk)
    stopped = await Turn.objects.aget(pk=turn.pk)
    assert stopped.status == Turn.Status.CANCELLED
    assert stopped.output_text
    assert stopped.can_retry


async def test_retry_makes_a_sibling_and_shows_it(user, thread):
    failed = await run_turn(user, thread, "try #fault=500")
    retried = await launch.branch_turn(user, failed.pk)
    await registry.wait_for(retried.pk)
    retried = await Turn.objects.aget(pk=retried.pk)
    assert retried.status == Turn.Status.FAILED  # the directive is part of the message
    assert retried.parent_id == failed.parent_id and retried.user_text == failed.user_text
    assert (await Thread.objects.aget(pk=thread.pk)).current_turn_id == retried.pk


@pytest.mark.parametrize(
    ("text", "message"), [("   ", "Type a message"), ("x" * 40000, "too long")]
)
async def test_invalid_messages_are_refused(user, thread, text, message):
    with pytest.raises(TurnRejected, match=message):
        await launch.start_turn(user, thread.pk, text)
    assert not await Turn.objects.filter(thread=thread).aexists()


async def test_another_users_thread_is_refused(other_user, thread):
    with pytest.raises(TurnRejected, match="no longer exists"):
        await launch.start_turn(other_user, thread.pk, "let me in")


async def test_one_answer_at_a_time_per_thread(user, thread):
    turn = await launch.start_turn(user, thread.pk, "slow #chunks=100 #delay=10")
    with pytest.raises(TurnRejected, match="still being written"):
        await launch.start_turn(user, thread.pk, "impatient")
    await registry.stop_turn(turn.pk)
    await registry.wait_for(turn.pk)


async def test_a_turn_stopped_before_its_runner_began_is_stored_as_stopped(user, thread):
    turn = await launch.start_turn(user, thread.pk, "slow #chunks=100 #delay=10")
    assert await registry.stop_turn(turn.pk)  # before the runner's task took its first step
    await registry.wait_for(turn.pk)
    await turn.arefresh_from_db()
    assert turn.status == Turn.Status.CANCELLED
    assert registry.running_snapshot(turn.pk) is None


@pytest.fixture
async def request_order(user, thread, monkeypatch) -> list[str]:
    """What happens in a turn, in order: "request" when its request is first written to the
    gateway (on a connection already open and pooled); tests add their own events."""
    await run_turn(user, thread, "hello")  # the connection to the gateway is open and pooled
    order = []
    real_write = network.AsyncioStream.write

    async def write(self, buffer, timeout=None):  # noqa: ASYNC109 (httpcore's interface)
        if "request" not in order:
            order.append("request")
        await real_write(self, buffer, timeout)

    monkeypatch.setattr(network.AsyncioStream, "write", write)
    return order


async def test_the_request_is_on_its_way_to_the_gateway_before_the_turn_is_announced(
    user, thread, monkeypatch, request_order
):
    # The announcement is rendered while the gateway works, not before the request leaves.
    real_created = launch._created

    def created(plan):
        request_order.append("announcement")
        return real_created(plan)

    monkeypatch.setattr(launch, "_created", created)
    turn = await run_turn(user, thread, "hello again")
    assert turn.status == Turn.Status.COMPLETED
    assert request_order[:2] == ["request", "announcement"]


async def test_the_request_leaves_before_work_already_queued_on_the_loop(
    user, thread, monkeypatch, request_order
):
    # On a busy worker the loop's queue holds every running stream's work: the new turn's
    # runner takes its first step (the request written) ahead of it.
    real_start = TurnRunner.start

    def start(self):
        asyncio.get_running_loop().call_soon(request_order.append, "other streams' work")
        return real_start(self)

    monkeypatch.setattr(TurnRunner, "start", start)
    turn = await run_turn(user, thread, "hello again")
    assert turn.status == Turn.Status.COMPLETED
    assert request_order[:2] == ["request", "other streams' work"]


def test_a_dead_workers_turn_is_marked_interrupted_and_keeps_its_text(thread, user, settings):
    settings.TURN_STALE_SECONDS = 20
    stale = timezone.now() - timedelta(seconds=30)
    dead = Turn.objects.create(
        thread=thread, author=user, user_text="q", output_text="half an ans", heartbeat_at=stale
    )
    alive = Turn.objects.create(
        thread=thread, author=user, user_text="q2", heartbeat_at=timezone.now()
    )
    assert registry.mark_interrupted_turns() == [(dead.pk, thread.pk)]
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == Turn.Status.INTERRUPTED
    assert dead.output_text == "half an ans"
    assert dead.can_retry
    # Another worker's turn that still beats its heart is left alone.
    assert alive.status == Turn.Status.IN_PROGRESS


async def test_a_turn_running_here_keeps_beating_while_the_upstream_is_silent(
    user, thread, settings
):
    settings.STREAM_CHECKPOINT_SECONDS = 0.05
    settings.TURN_STALE_SECONDS = 0.3
    turn = await launch.start_turn(user, thread.pk, "slow #chunks=6 #delay=200")
    await asyncio.sleep(0.6)
    # Even taken for another worker's turn (not in this process's registry), it is not stale.
    runner = registry._running.pop(turn.pk)
    try:
        assert await database_sync_to_async(registry.mark_interrupted_turns)() == []
    finally:
        registry._running[turn.pk] = runner
    await registry.wait_for(turn.pk)
    assert (await Turn.objects.aget(pk=turn.pk)).status == Turn.Status.COMPLETED


async def test_stop_reaches_a_runner_through_the_channel_layer(user, thread):
    """Stop pressed on another worker: the runner hears it on its own channel."""
    turn = await launch.start_turn(user, thread.pk, "long one #chunks=400 #delay=10")
    runner = registry._running.pop(turn.pk)  # as if it ran in another process
    try:
        for _ in range(200):
            await asyncio.sleep(0.02)
            if len(runner.state.text) > 5:
                break
        assert await registry.stop_turn(turn.pk)
        await asyncio.wait_for(asyncio.shield(runner.task), 5)
    finally:
        registry._running.pop(turn.pk, None)
    stopped = await Turn.objects.aget(pk=turn.pk)
    assert stopped.status == Turn.Status.CANCELLED and stopped.output_text
    assert stopped.runner_channel == ""


async def test_a_runner_answers_snapshot_requests_from_other_workers(user, thread):
    turn = await launch.start_turn(user, thread.pk, "long one #chunks=300 #delay=10")
    for _ in range(200):
        await asyncio.sleep(0.02)
        if len(registry._running[turn.pk].state.answer.blocks) >= 1:
            break
    layer = get_channel_layer()
    inbox = await layer.new_channel("test.")
    assert await registry.request_snapshot(turn.pk, inbox)
    reply = await asyncio.wait_for(layer.receive(inbox), 5)
    assert reply["type"] == "turn.snapshot" and reply["turn_id"] == turn.pk
    assert reply["blocks"] and reply["start"] == 0
    await registry.stop_turn(turn.pk)
    await registry.wait_for(turn.pk)
    assert not await registry.request_snapshot(turn.pk, inbox)  # finished: nobody to ask


async def test_a_running_answer_is_checkpointed(user, thread, settings):
    settings.STREAM_CHECKPOINT_SECONDS = 0.05
    turn = await launch.start_turn(user, thread.pk, "slow #chunks=60 #delay=10")
    await asyncio.sleep(0.4)
    saved = await Turn.objects.aget(pk=turn.pk)
    assert saved.status == Turn.Status.IN_PROGRESS
    assert saved.output_text  # a crash now would keep this much
    await registry.wait_for(turn.pk)


def test_database_writes_per_turn_do_not_grow_with_answer_length(make_thread, user, settings):
    settings.STREAM_CHECKPOINT_SECONDS = 60  # checkpoints are per time, not per token

    def queries_for(chunks: int) -> int:
        thread = make_thread(user)  # each measured turn is the first of its own thread

        async def go() -> Turn:
            return await run_turn(user, thread, f"count #chunks={chunks}")

        with CaptureQueriesContext(connection) as captured:
            turn = async_to_sync(go)()
        assert turn.status == Turn.Status.COMPLETED
        return len(captured.captured_queries)

    short, long = queries_for(100), queries_for(5000)
    assert short == long
    # The end and its usage record are one transaction (BEGIN/COMMIT); the start reads model
    # access and the team budget (one query each), the usage record its billing team.
    assert long <= 20


async def test_staff_model_defaults_are_sent_and_the_thread_overrides_them(
    user, thread, provider, demo_requests
):
    from chat.models import ModelSetting

    await ModelSetting.objects.acreate(
        provider=provider, model="demo-chat", default_params={"temperature": 0.2, "seed": 5}
    )
    thread.params = {"temperature": 0.9}
    await thread.asave()
    await run_turn(user, thread, "defaults")
    body = demo_requests()[-1]
    assert body["temperature"] == 0.9 and body["seed"] == 5
