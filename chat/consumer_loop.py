"""A socket's message loop: Channels' ``await_many_dispatch`` without its cost per message.

Channels waits on a socket's two sources (the browser's frames and its channel-layer channel)
with ``asyncio.wait`` on two tasks, and starts a new task for the source that answered, for
*every* message. For the deltas of streaming answers (every socket, every coalescing window)
that machinery cost about as much as the handler itself (issue 20's profile). Here one
long-lived pump per source puts what it receives on one small queue, which the loop dispatches
in arrival order: per message a queue hand-off, no new task, no ``wait``.

Same behaviour otherwise: each source's messages stay in order; a source that fails ends the
loop with its exception; the queue holds at most ``PENDING`` messages, so a socket that falls
behind leaves the rest in its channel, where the layer's capacity rule applies as before (a
full channel drops messages; the socket sees the gap at the next delta and resynchronizes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["PENDING", "dispatch_in_order"]

PENDING = 1

Source = Callable[[], Awaitable[Any]]


class _SourceFailed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _pump(source: Source, queue: asyncio.Queue) -> None:
    try:
        while True:
            await queue.put(await source())
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # the loop raises it, as await_many_dispatch would
        await queue.put(_SourceFailed(error))


async def dispatch_in_order(sources: list[Source], dispatch: Callable[[Any], Awaitable]) -> None:
    """Dispatch what ``sources`` receive until ``dispatch`` raises (``StopConsumer`` when the
    socket closed) or a source fails."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=PENDING)
    pumps = [asyncio.create_task(_pump(source, queue)) for source in sources]
    try:
        while True:
            message = await queue.get()
            if isinstance(message, _SourceFailed):
                raise message.error
            await dispatch(message)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
