"""The single-process channel layer: Channels' in-memory layer without its per-message scans.

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
import time
from copy import deepcopy
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

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


class LocalChannelLayer(InMemoryChannelLayer):
    def __init__(self, clean_interval: float = 1.0, **kwargs: Any) -> None:
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
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, copy_message(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        assert "__asgi_channel__" not in message
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):  # as in Channels: a full channel misses it
                self._put(channel, message)

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message
