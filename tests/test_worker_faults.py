"""One process's side of worker faults: a worker shutting down, and a channel layer that lost
its server for a while (the multi-process versions are in tests/test_multiprocess.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat import live, shutdown
from chat.markdown import render_markdown
from chat.models import Turn
from chat.services.refusals import TurnRejected
from chat.services.turns import launch, registry
from tests.support.htmx import AnswerView
from tests.ws import ORIGIN, finished, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_shutdown_lets_short_answers_finish_and_stores_long_ones_interrupted(
    user, make_thread, monkeypatch
):
    monkeypatch.setattr(registry, "accepting_turns", True)  # restored after the test
    short_thread = await database_sync_to_async(make_thread)(user)
    long_thread = await database_sync_to_async(make_thread)(user)
    short = await launch.start_turn(user, short_thread.pk, "brief #chunks=20 #delay=10")
    long = await launch.start_turn(user, long_thread.pk, "long #chunks=400 #delay=10")
    await asyncio.sleep(0.3)

    await asyncio.wait_for(shutdown.drain(grace=1.0), 10)

    short, long = await Turn.objects.aget(pk=short.pk), await Turn.objects.aget(pk=long.pk)
    assert short.status == Turn.Status.COMPLETED
    assert long.status == Turn.Status.INTERRUPTED and long.can_retry
    assert "restarted" in long.error
    assert 0 < len(long.output_text.split()) < 400  # everything written in 1.3 s was kept
    with pytest.raises(TurnRejected, match="restarting"):
        await launch.start_turn(user, short_thread.pk, "one more")


async def test_a_socket_catches_up_after_the_channel_layer_reconnected(
    make_thread, user, cookie_of
):
    thread = await database_sync_to_async(make_thread)(user)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    await ws.send_to(json.dumps({"action": "send", "message": "long #chunks=150 #delay=10"}))
    messages = await receive_until(ws, r'-tail" hx-swap-oob="innerHTML"><')
    turn = await Turn.objects.aget(thread=thread)
    view = AnswerView(turn.pk)
    for message in messages:
        view.apply(message)

    # Redis restarted: the socket's group membership and the messages meanwhile are lost...
    layer, group = get_channel_layer(), live.thread_group(thread.pk)
    # The socket's channel: memberships as the Redis layer remembers them, or the local one's.
    (channel,) = (layer.memberships if hasattr(layer, "memberships") else layer.groups)[group]
    await layer.group_discard(group, channel)
    await asyncio.sleep(0.4)
    missed = len(view.blocks)
    # ...until the layer is back, re-adds it and says so (chat/channel_layer.py).
    await layer.group_add(group, channel)
    await layer.send(channel, {"type": "channel_layer.reconnected"})
    messages = await receive_until(ws, finished(turn.pk))
    for message in messages[:-1]:
        view.apply(message)
    streamed = view.blocks
    await ws.disconnect()

    turn = await Turn.objects.aget(pk=turn.pk)
    whole = render_markdown(turn.output_text)
    assert len(streamed) > missed and whole.startswith(streamed), "a gap or a repeat"
    assert len(streamed) > len(whole) // 2
