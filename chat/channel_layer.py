"""The channel layers: Channels' in-memory layer without its per-message scans (one process),
and channels_redis's layer made to survive a Redis restart (several workers, at the end).

Used when no ``REDIS_URL`` is set (one Daphne process; see ``CHANNEL_LAYERS`` in the settings).
Channels' ``InMemoryChannelLayer`` walks every channel queue and every group membership looking
for expired entries on *every* ``receive`` and ``group_send``, so each message costs time in
proportion to the number of open sockets (quadratic overall while many answers stream), and its
``group_send`` starts one task per member. This subclass keeps the same behaviour and limits:

- expired messages and group memberships are still removed, by the same rules, but the scan
  runs at most once every ``clean_interval`` seconds (default 1 s; expiry itself is 60 s, so
  an expired entry lingers at most a second longer);
- ``group_send`` puts the message on each member's queue directly (same capacity rule: a full
  channel drops the message) instead of through a task per member;
- messages are still copied per receiver, as by ``deepcopy``, with a fast path for the flat
  dicts of strings, numbers and lists of strings this app sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Sequence
from copy import deepcopy
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from redis import exceptions as redis_exceptions

log = logging.getLogger(__name__)

_ATOMS = (str, int, float, bool, type(None))


def copy_message(message: dict) -> dict:
    """A copy no receiver can change for another: ``deepcopy``, made cheap for flat messages."""
    copied: dict[str, Any] = {}
    for key, value in message.items():
        if isinstance(value, _ATOMS):
            copied[key] = value
        elif isinstance(value, list) and all(isinstance(item, _ATOMS) for item in value):
            copied[key] = list(value)
        else:
            return deepcopy(message)
    return copied


class Inbox:
    """One channel's waiting messages and its receiver, for a fraction of ``asyncio.Queue``'s
    memory: an idle socket's queue (three deques and an ``Event``, about 3 KB) was a tenth of
    what each open websocket cost. The same interface as far as the layer uses it; ``_queue``
    for ``InMemoryChannelLayer._clean_expired``."""

    __slots__ = ("_queue", "_waiters", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._queue: list[tuple[float, dict]] = []  # short: at most ``capacity`` (100)
        self._waiters: list[asyncio.Future[None]] = []

    def qsize(self) -> int:
        return len(self._queue)

    def empty(self) -> bool:
        return not self._queue

    def put_nowait(self, item: tuple[float, dict]) -> None:
        if len(self._queue) >= self.capacity:
            raise asyncio.QueueFull
        self._queue.append(item)
        self._wake()

    def get_nowait(self) -> tuple[float, dict]:
        if not self._queue:
            raise asyncio.QueueEmpty
        return self._queue.pop(0)

    async def get(self) -> tuple[float, dict]:
        while not self._queue:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # it was woken for a message it will not take: pass it on
                raise
        return self._queue.pop(0)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return


Queue = Inbox | asyncio.Queue


def waiters_of(queue: Queue) -> Any:
    """The futures ``put_nowait`` wakes one of (``asyncio.Queue`` names its own ``_getters``)."""
    return queue._waiters if isinstance(queue, Inbox) else queue._getters


async def next_of(queues: Sequence[Queue], start: int = 0) -> tuple[int, Any]:
    """(index, item) of the first queue with an item, looking from ``queues[start]`` round the
    others; when all are empty, one future waits in all of them for the next ``put_nowait``
    (instead of a task per queue)."""
    count = len(queues)
    while True:
        for step in range(count):
            index = (start + step) % count
            if not queues[index].empty():
                return index, queues[index].get_nowait()
        waiter = asyncio.get_running_loop().create_future()
        for queue in queues:
            waiters_of(queue).append(waiter)
        try:
            await waiter
        finally:
            for queue in queues:
                with contextlib.suppress(ValueError):
                    waiters_of(queue).remove(waiter)


class LocalChannelLayer(InMemoryChannelLayer):
    def __init__(self, clean_interval: float = 1.0, **kwargs: Any) -> None:
        # Memberships end when sockets leave; Channels' default (a day) silently dropped a
        # tab left open longer from its thread's group.
        kwargs.setdefault("group_expiry", 10 * 365 * 86400)
        super().__init__(**kwargs)
        self.clean_interval = clean_interval
        self._next_clean = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_clean:
            return
        self._next_clean = now + self.clean_interval
        super()._clean_expired()

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, message)

    def _put(self, channel: str, message: dict) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = Inbox(self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, copy_message(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group: str, message: dict) -> None:
        self.group_send_except(group, message, ())

    def group_send_except(self, group: str, message: dict, skipped: Collection[str]) -> None:
        """``group_send`` to the members not in ``skipped`` (sockets that got the message
        directly: ``chat.live_local``; usually all of them, then nothing else is done)."""
        assert isinstance(message, dict), "Message is not a dict"
        if all(channel in skipped for channel in self.groups.get(group, ())):
            return
        self.require_valid_group_name(group)
        assert "__asgi_channel__" not in message
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            if channel in skipped:
                continue
            with contextlib.suppress(ChannelFull):  # as in Channels: a full channel misses it
                self._put(channel, message)

    def _inbox(self, channel: str) -> Inbox:
        """The channel's queue, made for a receiver (and dropped again once empty: ``_done``)."""
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = Inbox(self.get_capacity(channel))
        return queue

    def _done(self, channel: str, queue: Inbox) -> None:
        if queue.empty():
            self.channels.pop(channel, None)

    async def receive(self, channel: str) -> dict:
        queue = self._inbox(channel)
        try:
            _, message = await queue.get()
        finally:
            self._done(channel, queue)
        return message

    async def receive_or(self, channel: str, other: Queue, start: int = 0) -> tuple[int, dict]:
        """``receive(channel)`` or ``other.get()``, whichever has a message first, with one
        wait: (1, the channel's message) or (0, other's item); ``start`` says which queue is
        looked at first when both have one (``next_of``)."""
        queue = self._inbox(channel)
        try:
            source, item = await next_of((other, queue), start)
        finally:
            self._done(channel, queue)
        return source, (item[1] if source == 1 else item)


# -- Redis: survive a restart of the server ---------------------------------------------------

# What a lost Redis connection raises (redis-py's own ConnectionError is not the builtin one).
LAYER_ERRORS: tuple[type[BaseException], ...] = (
    redis_exceptions.ConnectionError,
    redis_exceptions.TimeoutError,
    OSError,
)

RECONNECTED = "channel_layer.reconnected"


class ChannelLayerUnavailable(Exception):
    """Redis stayed unreachable for the whole retry window of one operation."""


class ResilientRedisChannelLayer(RedisChannelLayer):
    """channels_redis's layer, made to survive Redis restarting (or a dropped connection).

    channels_redis raises on the first error: every socket's receive loop then dies (Daphne
    closes it with 1011), a runner's publishing and control loops die with it, and group
    memberships, which live in Redis, are gone once the server comes back empty. Here:

    - ``send``, ``group_send``, ``group_add`` and ``group_discard`` wait for Redis to come back
      and try again, for at most ``retry_seconds``; then raise ``ChannelLayerUnavailable``;
    - ``receive`` never raises for a lost connection: it waits for Redis to come back;
    - one reconnection task per event loop pings Redis with backoff (``RETRY_DELAYS``), then
      adds every group membership of this process again, and puts a ``channel_layer.reconnected``
      message in each member channel, so its socket can fetch what was published meanwhile.
    """

    RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5)  # then 0.5 s between attempts (a PING each)

    def __init__(self, *args: Any, retry_seconds: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_seconds = retry_seconds
        # group → channels of this process in it: what to add again after a restart.
        self.memberships: dict[str, set[str]] = {}
        self._reconnecting: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    # -- operations, retried --------------------------------------------------------------

    async def send(self, channel: str, message: dict) -> None:
        await self._retried(super().send, channel, message)

    async def group_send(self, group: str, message: dict) -> None:
        await self._retried(super().group_send, group, message)

    async def group_add(self, group: str, channel: str) -> None:
        self.memberships.setdefault(group, set()).add(channel)
        await self._retried(super().group_add, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        # Forgotten first: a socket gone during an outage must not be added back afterwards.
        members = self.memberships.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.memberships[group]
        await self._retried(super().group_discard, group, channel)

    async def receive(self, channel: str) -> dict:
        while True:
            try:
                return await super().receive(channel)
            except LAYER_ERRORS as exc:
                log.warning("channel layer receive failed (%s); waiting for Redis", exc)
                await asyncio.shield(self._reconnection())

    async def _retried(self, operation, *args: Any) -> None:
        deadline = time.monotonic() + self.retry_seconds
        while True:
            try:
                return await operation(*args)
            except LAYER_ERRORS as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChannelLayerUnavailable(f"Redis unreachable: {exc}") from exc
                log.warning("channel layer %s failed (%s); retrying", operation.__name__, exc)
                try:
                    async with asyncio.timeout(left):
                        await asyncio.shield(self._reconnection())
                except TimeoutError:
                    raise ChannelLayerUnavailable(f"Redis unreachable: {exc}") from exc

    # -- reconnection -----------------------------------------------------------------------

    def _reconnection(self) -> asyncio.Task[None]:
        """This loop's reconnection task: the running one, or a new one."""
        loop = asyncio.get_running_loop()
        task = self._reconnecting.get(loop)
        if task is None or task.done():
            task = loop.create_task(self._reconnect(), name="channel-layer-reconnect")
            self._reconnecting[loop] = task
        return task

    async def _reconnect(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(self.RETRY_DELAYS[min(attempt, len(self.RETRY_DELAYS) - 1)])
            attempt += 1
            try:
                for index in range(self.ring_size):
                    await self.connection(index).ping()
                await self._resubscribe()
            except LAYER_ERRORS as exc:
                log.debug("Redis still unreachable: %s", exc)
                continue
            log.warning("channel layer reconnected to Redis after %d attempt(s)", attempt)
            return

    async def _resubscribe(self) -> None:
        """Group memberships live in Redis: a restarted server has none. Add this process's
        again, then tell each member channel that messages may have been lost meanwhile."""
        channels: set[str] = set()
        for group, members in list(self.memberships.items()):
            for channel in list(members):
                await RedisChannelLayer.group_add(self, group, channel)
                channels.add(channel)
        for channel in channels:
            if "!" in channel:  # this process's own channels: wake their receivers
                self.receive_buffer[channel].put_nowait({"type": RECONNECTED})
