"""Idle sockets stay cheap and stay subscribed: the in-process layer's channel inboxes."""

import asyncio
import time

import pytest

from chat.channel_layer import Inbox, LocalChannelLayer


async def test_a_tab_open_for_days_still_gets_its_threads_updates():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("thread-1", channel)
    # Joined two days ago (Channels' in-memory layer forgot members after one day).
    layer.groups["thread-1"][channel] = time.time() - 2 * 86400
    layer._next_clean = 0.0
    await layer.group_send("thread-1", {"type": "turn.delta", "n": 1})
    message = await asyncio.wait_for(layer.receive(channel), 1)
    assert message == {"type": "turn.delta", "n": 1}


async def test_a_waiting_receiver_gets_messages_in_order_and_a_full_inbox_refuses():
    inbox = Inbox(capacity=2)
    receiver = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait((0.0, {"n": 1}))
    inbox.put_nowait((0.0, {"n": 2}))
    with pytest.raises(asyncio.QueueFull):
        inbox.put_nowait((0.0, {"n": 3}))
    assert (await receiver)[1] == {"n": 1}
    assert (await inbox.get())[1] == {"n": 2}
    assert inbox.empty()


async def test_a_cancelled_receiver_passes_its_message_to_the_next():
    inbox = Inbox(capacity=10)
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait((0.0, {"n": 1}))  # wakes the first…
    first.cancel()  # …which is cancelled before it takes it
    assert (await asyncio.wait_for(second, 1))[1] == {"n": 1}
