"""The conversation is a tree: edit and regenerate make siblings; switching is persistent; a
follow-up continues the branch on screen, for both APIs."""

import json

import pytest
from channels.testing import WebsocketCommunicator

from chat.models import Thread, Turn
from chat.routing import websocket_application
from chat.services import conversation, refusals
from chat.services.turns import launch, registry
from tests.ws import HOST

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


async def finished(turn: Turn) -> Turn:
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


async def send(user, thread, text) -> Turn:
    return await finished(await launch.start_turn(user, thread.pk, text))


async def path_texts(thread) -> list[str]:
    fresh = await Thread.objects.aget(pk=thread.pk)
    path = await conversation.sync_to_async_path(fresh)
    return [t.user_text for t in path]


async def test_edit_makes_a_sibling_branch_and_shows_it(user, thread):
    first = await send(user, thread, "one")
    await send(user, thread, "two")
    edited = await finished(await launch.branch_turn(user, first.pk, "one, edited"))
    assert edited.parent_id is None and edited.pk != first.pk
    assert await path_texts(thread) == ["one, edited"]
    # The old branch is kept: switching back shows it whole, down to its newest turn.
    fresh = await Thread.objects.aget(pk=thread.pk)
    assert await conversation.sync_to_async_switch(fresh, first.pk)
    assert await path_texts(thread) == ["one", "two"]


async def test_regenerate_asks_the_same_message_again(user, thread):
    first = await send(user, thread, "again please")
    second = await finished(await launch.branch_turn(user, first.pk))
    assert second.user_text == first.user_text and second.parent_id == first.parent_id
    tree = await conversation.sync_to_async_tree(await Thread.objects.aget(pk=thread.pk))
    siblings = tree.siblings(tree.turns[second.pk])
    assert (siblings.position, siblings.count, siblings.previous_id) == (2, 2, first.pk)


async def test_follow_up_uses_the_response_id_of_the_branch_on_screen(user, thread, demo_requests):
    root = await send(user, thread, "root")
    a = await send(user, thread, "branch A")
    b = await finished(await launch.branch_turn(user, a.pk, "branch B"))
    await send(user, thread, "after B")
    assert demo_requests()[-1]["previous_response_id"] == b.response_id
    await conversation.sync_to_async_switch(await Thread.objects.aget(pk=thread.pk), a.pk)
    await send(user, thread, "after A")
    assert demo_requests()[-1]["previous_response_id"] == a.response_id
    assert root.response_id not in (a.response_id, b.response_id)


async def test_chat_completions_sends_the_branch_path_as_messages(user, thread, demo_requests):
    thread.api = "chat"
    await thread.asave()
    a = await send(user, thread, "first")
    await finished(await launch.branch_turn(user, a.pk, "first, edited"))
    await send(user, thread, "second")
    messages = demo_requests()[-1]["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["first, edited", "second"]
    assert messages[1]["role"] == "assistant"


async def test_switching_over_the_socket_rerenders_the_path_for_every_viewer(user, thread, client):
    first = await send(user, thread, "v1")
    second = await finished(await launch.branch_turn(user, first.pk, "v2"))
    await database_login(client, user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    origin = (b"origin", b"http://127.0.0.1")
    viewers = [
        WebsocketCommunicator(
            websocket_application, f"/ws/threads/{thread.pk}/", headers=[origin, HOST, cookie]
        )
        for _ in range(2)
    ]
    for ws in viewers:
        assert (await ws.connect())[0]
    await viewers[0].send_to(json.dumps({"action": "switch", "turn_id": str(first.pk)}))
    for ws in viewers:
        html = await ws.receive_from(timeout=5)
        while 'id="turns"' not in html:
            html = await ws.receive_from(timeout=5)
        assert "v1" in html and "v2" not in html.split('id="turns"')[1].split("</section>")[0]
        assert ">1/2<" in html and 'aria-label="Next version"' in html
        await ws.disconnect()
    assert (await Thread.objects.aget(pk=thread.pk)).current_turn_id == first.pk
    assert second.pk != first.pk


async def database_login(client, user):
    from asgiref.sync import sync_to_async

    await sync_to_async(client.force_login)(user)


async def test_cannot_branch_from_another_users_turn(user, other_user, thread):
    mine = await send(user, thread, "private")
    with pytest.raises(refusals.TurnRejected):
        await launch.branch_turn(other_user, mine.pk, "hijack")
