"""A running turn's text, mirrored in Redis at every coalescing flush.

A runner checkpoints its text in the database only every ``STREAM_CHECKPOINT_SECONDS`` (a write
per flush would be a database write every 40 ms per turn). A worker killed outright (kill -9,
out of memory) would therefore lose everything its viewers saw since the last checkpoint. With
``REDIS_URL`` set, the runner also appends each flush's new text to a Redis key per turn, just
before it publishes that flush, so whichever worker reaps the dead turn (and any socket showing
it meanwhile) stores the text as far as the viewers saw it: at most one coalescing window is
lost. Without Redis there is no other process to read a mirror: a dead process loses at most
``STREAM_CHECKPOINT_SECONDS`` of text (docs/architecture.md).

One ``APPEND`` per key and flush (the delta, not the whole text), through the channel layer's
own connection pool; ``APPEND`` answers the key's new length, so a mirror that lost a piece
(Redis restarted, a write failed) is noticed and written whole again. Keys expire
``MIRROR_SECONDS`` after the last write: no cleanup is needed, and a whole cluster restarted
within that time still finds them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from functools import cache

import redis
from channels.layers import get_channel_layer
from django.conf import settings

from chat.channel_layer import LAYER_ERRORS
from chat.models import Turn

log = logging.getLogger(__name__)

MIRROR_SECONDS = 600
WRITE_TIMEOUT = 1.0
READ_TIMEOUT = 2.0


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def _keys(turn_id: int) -> tuple[str, str]:
    """(answer key, reasoning key), under the channel layer's prefix (one per installation)."""
    config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
    prefix = f"{config.get('prefix', settings.CHANNEL_LAYER_PREFIX)}turn-text:{turn_id}"
    return f"{prefix}:answer", f"{prefix}:reasoning"


class TextMirror:
    """One runner's mirror: ``write`` after each flush, with the text pieces so far."""

    def __init__(self, turn_id: int) -> None:
        self.keys = _keys(turn_id) if enabled() else None
        self._pieces = [0, 0]  # pieces of (answer, reasoning) already mirrored
        self._sizes = [0, 0]  # their size in bytes, as Redis counts it
        self._whole = True  # the next write replaces the keys: the first, or after a failure

    async def write(self, answer: list[str], reasoning: list[str]) -> None:
        """Mirror the new pieces. Never raises: the mirror is a best effort, the turn goes on."""
        if self.keys is None:
            return
        # Taken now: the runner keeps adding pieces while this waits for Redis.
        parts = (answer[:], reasoning[:])
        if not self._whole and [len(p) for p in parts] == self._pieces:
            return
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                for attempt in (1, 2):  # a pooled connection Redis closed fails once
                    try:
                        if self._whole or not await self._append(parts):
                            await self._replace(parts)
                        return
                    except LAYER_ERRORS:
                        self._whole = True
                        if attempt == 2:
                            raise
        except (*LAYER_ERRORS, TimeoutError) as exc:
            log.debug("could not mirror %s: %s", self.keys[0], exc)

    async def _append(self, parts: tuple[list[str], list[str]]) -> bool:
        """Append what is new; False when a key's length shows a piece is missing."""
        pipe = _connection(self.keys[0]).pipeline(transaction=False)
        expected = []
        for index, (key, pieces) in enumerate(zip(self.keys, parts, strict=True)):
            new = "".join(pieces[self._pieces[index] :]).encode()
            expected.append(self._sizes[index] + len(new))
            pipe.append(key, new)
            pipe.expire(key, MIRROR_SECONDS)
        lengths = (await pipe.execute())[::2]
        self._remember(parts, expected)
        return lengths == expected

    async def _replace(self, parts: tuple[list[str], list[str]]) -> None:
        pipe = _connection(self.keys[0]).pipeline(transaction=False)
        sizes = []
        for key, pieces in zip(self.keys, parts, strict=True):
            whole = "".join(pieces).encode()
            sizes.append(len(whole))
            pipe.set(key, whole, ex=MIRROR_SECONDS)
        await pipe.execute()
        self._remember(parts, sizes)
        self._whole = False

    def _remember(self, parts: tuple[list[str], list[str]], sizes: list[int]) -> None:
        self._pieces = [len(pieces) for pieces in parts]
        self._sizes = sizes


def _connection(key: str):
    """The channel layer's own (per event loop) Redis client for the shard holding ``key``."""
    layer = get_channel_layer()
    return layer.connection(layer.consistent_hash(key))


@cache
def _reader(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=READ_TIMEOUT, socket_connect_timeout=READ_TIMEOUT
    )


def read(turn_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """The mirrored (answer, reasoning) of these turns, for those that have one. Blocking (for
    the reaper and renders, which run in threads); {} when Redis does not answer."""
    ids = list(turn_ids)
    if not enabled() or not ids:
        return {}
    keys = [key for turn_id in ids for key in _keys(turn_id)]
    for attempt in (1, 2):  # a pooled connection Redis closed fails once
        try:
            values = _reader(settings.REDIS_URL).mget(keys)
            break
        except LAYER_ERRORS as exc:
            if attempt == 2:
                log.warning("could not read mirrored text: %s", exc)
                return {}
    found = {}
    for position, turn_id in enumerate(ids):
        answer, reasoning = values[2 * position], values[2 * position + 1]
        if answer is not None or reasoning is not None:
            found[turn_id] = ((answer or b"").decode(), (reasoning or b"").decode())
    return found


def _longer(stored: str, mirrored: str) -> str:
    """The mirror when it carries on from the stored text; otherwise what is stored (a
    checkpoint written after the last flush is the newer one)."""
    return mirrored if len(mirrored) > len(stored) and mirrored.startswith(stored) else stored


def freshen(turns: Iterable[Turn]) -> list[Turn]:
    """Give running turns the mirrored text when it is newer than their checkpoint (in memory);
    returns the turns that changed."""
    running = [turn for turn in turns if turn.status == Turn.Status.IN_PROGRESS]
    mirrored = read(turn.pk for turn in running)
    changed = []
    for turn in running:
        if turn.pk not in mirrored:
            continue
        answer, reasoning = mirrored[turn.pk]
        new = (_longer(turn.output_text, answer), _longer(turn.reasoning_text, reasoning))
        if new != (turn.output_text, turn.reasoning_text):
            turn.output_text, turn.reasoning_text = new
            changed.append(turn)
    return changed


def freshened(turn: Turn) -> Turn:
    """``turn``, with the mirrored text when it is newer (a running turn read from the database)."""
    freshen([turn])
    return turn
