"""The single-process channel layer: Channels' in-memory layer, without its per-message scans."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.exceptions import ChannelFull

from chat.channel_layer import (
    RECONNECTED,
    ChannelLayerUnavailable,
    LocalChannelLayer,
    ResilientRedisChannelLayer,
    copy_message,
)


async def test_group_messages_reach_every_member_as_their_own_copy():
    layer = LocalChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("thread-1", a)
    await layer.group_add("thread-1", b)
    message = {"type": "turn.delta", "blocks": ["<p>x</p>"], "extra": {"nested": [1]}}
    await layer.group_send("thread-1", message)
    got_a, got_b = await layer.receive(a), await layer.receive(b)
    assert got_a == got_b == message
    got_a["blocks"].append("changed")
    got_a["extra"]["nested"].append(2)
    assert got_b == message and message["blocks"] == ["<p>x</p>"]


def test_flat_messages_are_copied_like_deepcopy():
    message = {"type": "t", "n": 1, "s": "x", "none": None, "items": ["a", "b"]}
    copied = copy_message(message)
    assert copied == message and copied["items"] is not message["items"]
    nested = {"type": "t", "items": [["a"]]}
    assert copy_message(nested)["items"][0] is not nested["items"][0]


async def test_a_full_channel_misses_group_messages_but_a_direct_send_fails():
    layer = LocalChannelLayer(capacity=2)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    for n in range(4):
        await layer.group_send("g", {"type": "m", "n": n})
    assert [(await layer.receive(channel))["n"] for _ in range(2)] == [0, 1]
    await layer.send(channel, {"type": "m", "n": 5})
    await layer.send(channel, {"type": "m", "n": 6})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "m", "n": 7})


async def test_expired_messages_and_memberships_are_still_cleaned_at_most_once_per_interval():
    layer = LocalChannelLayer(group_expiry=1, clean_interval=0.2)

    async def send_expired(channel: str) -> None:
        layer.expiry = -1  # already past its expiry when it is queued
        await layer.send(channel, {"type": "old"})
        layer.expiry = 60

    gone, kept = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", gone)
    await layer.group_add("g", kept)
    await send_expired(gone)
    await layer.group_send("g", {"type": "first"})  # the first scan runs now
    assert gone not in layer.channels and gone not in layer.groups["g"]
    await layer.group_add("g", gone)
    await send_expired(gone)
    await layer.group_send("g", {"type": "second"})  # within the interval: no scan
    assert gone in layer.groups["g"]
    await asyncio.sleep(0.25)
    await layer.group_send("g", {"type": "third"})  # the interval has passed
    assert gone not in layer.groups["g"]
    layer.groups["g"][kept] = time.time() - 5  # a membership older than group_expiry
    await asyncio.sleep(0.25)
    await layer.group_send("g", {"type": "fourth"})
    assert "g" not in layer.groups or kept not in layer.groups["g"]
    assert [(await layer.receive(kept))["type"] for _ in range(3)] == ["first", "second", "third"]


def test_settings_use_it_without_redis(settings):
    # With REDIS_URL several processes share Redis's layer instead.
    expected = (
        "chat.channel_layer.ResilientRedisChannelLayer"
        if settings.REDIS_URL
        else "chat.channel_layer.LocalChannelLayer"
    )
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == expected


# -- Redis restarting under the layer (a dedicated redis-server, see tests/redis_server.py) -----


def _redis_layer(server, **config) -> ResilientRedisChannelLayer:
    return ResilientRedisChannelLayer(
        hosts=[{"address": server.url, "socket_timeout": None}], prefix="t-layer.", **config
    )


async def test_redis_restart_keeps_receivers_and_group_memberships(redis_server):
    layer = _redis_layer(redis_server)
    channel = await layer.new_channel()
    await layer.group_add("thread-1", channel)
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.2)  # blocked in Redis
    await asyncio.to_thread(redis_server.restart, 0.5)  # comes back empty
    # The receiver is told messages may have been lost, instead of failing...
    assert (await asyncio.wait_for(receiving, 10)) == {"type": RECONNECTED}
    # ...and is in its group again, although the restarted server had forgotten it.
    await layer.group_send("thread-1", {"type": "turn.delta", "n": 1})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "turn.delta", "n": 1}
    await layer.close_pools()


async def test_a_plain_channel_receiver_and_a_send_wait_for_redis_to_come_back(redis_server):
    layer = _redis_layer(redis_server)
    runner = "turn-runner.abc"  # a runner's control channel: no group, no notice
    receiving = asyncio.ensure_future(layer.receive(runner))
    await asyncio.sleep(0.2)
    await asyncio.to_thread(redis_server.stop)
    sending = asyncio.ensure_future(layer.send(runner, {"type": "turn.stop"}))
    await asyncio.sleep(1.0)  # Redis is down: both wait
    assert not receiving.done() and not sending.done()
    await asyncio.to_thread(redis_server.start)
    await asyncio.wait_for(sending, 10)
    assert await asyncio.wait_for(receiving, 10) == {"type": "turn.stop"}
    await layer.close_pools()


async def test_a_send_gives_up_with_a_clear_error_after_the_retry_window(redis_server):
    layer = _redis_layer(redis_server, retry_seconds=0.5)
    await asyncio.to_thread(redis_server.stop)
    with pytest.raises(ChannelLayerUnavailable, match="Redis unreachable"):
        await asyncio.wait_for(layer.group_send("thread-1", {"type": "x"}), 5)
    await asyncio.to_thread(redis_server.start)
    await layer.group_send("thread-1", {"type": "x"})  # and works again once it is back
    await layer.close_pools()


async def test_a_busy_workers_sockets_miss_no_group_message(redis_server, settings):
    # channels_redis keeps what waits for all of a worker's sockets in one Redis list (one entry
    # per group message); its capacity, as configured, must hold more than a moment's traffic
    # (100 did not: at 40 streams a turn's end was dropped for a quarter of them, bench #16).
    layer = _redis_layer(redis_server, capacity=settings.CHANNEL_LAYER_CAPACITY)
    sockets = [await layer.new_channel() for _ in range(2)]
    for channel in sockets:
        await layer.group_add("thread-1", channel)
    for n in range(150):  # 150 deltas published before the worker reads any
        await layer.group_send("thread-1", {"type": "turn.delta", "n": n})
    for channel in sockets:
        received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(150)]
        assert received == list(range(150))
    await layer.close_pools()


async def test_hundreds_of_answers_publishing_at_once_get_their_redis_connections(
    redis_server, caplog
):
    # 300 publishes in flight at once on one worker (200 streaming answers do that): redis-py
    # 8's pool of 100 refused the rest ("Too many connections") and the layer retried them as
    # if Redis were down. The settings' pool holds them all.
    from project.settings import redis_hosts

    layer = ResilientRedisChannelLayer(
        hosts=redis_hosts(redis_server.url), prefix="t-pool.", capacity=1_000
    )
    channels = [await layer.new_channel() for _ in range(300)]
    for index, channel in enumerate(channels):
        await layer.group_add(f"thread-{index}", channel)
    await asyncio.gather(
        *(layer.group_send(f"thread-{i}", {"type": "delta", "n": i}) for i in range(300))
    )
    received = [await asyncio.wait_for(layer.receive(channel), 10) for channel in channels]
    assert [message["n"] for message in received] == list(range(300))
    assert "Too many connections" not in caplog.text
    await layer.flush()
