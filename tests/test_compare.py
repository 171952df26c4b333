"""Compare models side by side (issue 19): one message to 2 or 3 models at once, as sibling turns;
the first continues the path; choosing another switches; the one-answer-at-a-time rule holds
for everything else."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from chat.models import Thread, Turn
from chat.routing import websocket_application
from chat.services import compare, conversation, refusals
from chat.services.turns import launch, registry
from tests.ws import HOST

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = ("demo-chat", "gpt-5.4", "gpt-5.4-mini")


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


def choices(provider, models=MODELS) -> list[str]:
    return [f"{provider.pk}:{model}" for model in models]


async def finished_all(turns: list[Turn]) -> list[Turn]:
    for turn in turns:
        await registry.wait_for(turn.pk)
    return [await Turn.objects.aget(pk=turn.pk) for turn in turns]


async def send(user, thread, text) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


async def test_three_models_answer_as_sibling_turns(user, thread, provider, demo_requests):
    first = await send(user, thread, "hello")
    turns = await finished_all(
        await compare.start_comparison(user, thread.pk, "Which is best?", choices(provider))
    )
    assert [t.model for t in turns] == list(MODELS)
    assert {t.parent_id for t in turns} == {first.pk}
    assert {t.user_text for t in turns} == {"Which is best?"}
    assert len({t.compare_group for t in turns}) == 1 and turns[0].compare_group
    assert all(t.status == Turn.Status.COMPLETED and t.output_text for t in turns)
    assert all(t.total_tokens > 0 for t in turns)
    # Each model was asked, with the conversation so far.
    asked = [r["model"] for r in demo_requests() if r.get("input") or r.get("messages")]
    assert sorted(asked[-3:]) == sorted(MODELS)
    # The first answer is on screen; the thread has no extra turn.
    fresh = await Thread.objects.aget(pk=thread.pk)
    assert fresh.current_turn_id == turns[0].pk
    assert await Turn.objects.filter(thread=thread).acount() == 4


async def test_choosing_one_continues_the_thread_from_it(user, thread, provider, demo_requests):
    turns = await finished_all(
        await compare.start_comparison(user, thread.pk, "Pick me", choices(provider, MODELS[:2]))
    )
    fresh = await Thread.objects.aget(pk=thread.pk)
    assert await conversation.sync_to_async_switch(fresh, turns[1].pk)
    follow_up = await send(user, thread, "and then?")
    assert follow_up.parent_id == turns[1].pk
    assert demo_requests()[-1]["previous_response_id"] == turns[1].response_id
    # The other answer stays as a sibling branch.
    tree = await conversation.sync_to_async_tree(await Thread.objects.aget(pk=thread.pk))
    assert tree.siblings(tree.turns[turns[0].pk]).count == 2


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["1:demo-chat"], "Choose 2 or 3 models"),
        (["1:a", "1:b", "1:c", "1:d"], "Choose 2 or 3 models"),
        ("nonsense", "not available"),
        (None, "Choose 2 or 3 models"),
        ([{"x": 1}, "1:a"], "not understood"),
        (["x:a", "1:b"], "not available"),
    ],
)
def test_bad_choices_are_refused(models, message):
    with pytest.raises(refusals.TurnRejected, match=message):
        compare.parse_choices(models)


async def test_a_refused_comparison_creates_no_turn(user, thread, provider, settings):
    thread.provider = None
    await thread.asave()
    with pytest.raises(refusals.TurnRejected, match="not available"):
        await compare.start_comparison(
            user, thread.pk, "hi", [f"{provider.pk}:demo-chat", "999999:gpt-5.4"]
        )
    assert not await Turn.objects.filter(thread=thread).aexists()


async def test_no_other_answer_starts_while_a_comparison_runs(user, thread, provider):
    turns = await compare.start_comparison(
        user, thread.pk, "slow #chunks=30 #delay=20", choices(provider, MODELS[:2])
    )
    with pytest.raises(refusals.TurnRejected, match="still being written"):
        await launch.start_turn(user, thread.pk, "butting in")
    with pytest.raises(refusals.TurnRejected, match="still being written"):
        await compare.start_comparison(user, thread.pk, "again", choices(provider))
    await finished_all(turns)


async def test_another_users_thread_is_refused(user, other_user, thread, provider):
    with pytest.raises(refusals.TurnRejected):
        await compare.start_comparison(other_user, thread.pk, "mine now", choices(provider))
    assert not await Turn.objects.filter(thread=thread).aexists()


async def test_the_socket_action_streams_columns_with_costs(user, thread, provider, client):
    from asgiref.sync import sync_to_async

    await sync_to_async(client.force_login)(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    ws = WebsocketCommunicator(
        websocket_application,
        f"/ws/threads/{thread.pk}/",
        headers=[(b"origin", b"http://127.0.0.1"), HOST, cookie],
    )
    assert (await ws.connect())[0]
    await ws.send_to(
        json.dumps(
            {
                "action": "compare",
                "message": "Columns #chunks=5",
                "compare_models": choices(provider),
            }
        )
    )
    received = ""
    # Until each column's turn has ended and its cost cell was swapped in.
    while received.count('class="compare-cost" hx-swap-oob="true"') < 3:
        received += await ws.receive_from(timeout=10)
    await ws.disconnect()
    assert 'aria-label="Comparing 3 models"' in received
    assert received.count('class="compare-cost" hx-swap-oob="true"') == 3
    turns = [t async for t in Turn.objects.filter(thread=thread).order_by("pk")]
    for turn in turns:
        assert f'id="turn-{turn.pk}-answer"' in received


async def test_a_new_chat_can_start_with_a_comparison(async_client, user, provider):
    await async_client.aforce_login(user)
    form = {
        "model": f"{provider.pk}:demo-chat",
        "message": "First, compared",
        "compare_models": choices(provider, MODELS[1:]),
    }
    response = await async_client.post("/threads/new/", form)
    thread = await Thread.objects.aget(owner=user)
    assert response["Location"] == f"/t/{thread.pk}/"
    turns = await finished_all([t async for t in Turn.objects.filter(thread=thread).order_by("pk")])
    assert [t.model for t in turns] == list(MODELS[1:])
    assert thread.title == "First, compared"
    page = (await async_client.get(f"/t/{thread.pk}/")).content.decode()
    assert 'aria-label="Comparing 2 models"' in page


async def test_a_refused_new_comparison_creates_no_chat(async_client, user, provider):
    await async_client.aforce_login(user)
    form = {
        "model": f"{provider.pk}:demo-chat",
        "message": "Only one",
        "compare_models": choices(provider, MODELS[:1]),
    }
    response = await async_client.post("/threads/new/", form)
    assert "Choose 2 or 3 models to compare." in response.content.decode()
    assert not await Thread.objects.filter(owner=user).aexists()
