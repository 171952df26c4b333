"""Live messages to this process's own sockets, without the channel layer.

``live.publish`` hands a thread's message to every socket of the thread in this process here
(``deliver``), and sends it over the channel layer only for the sockets elsewhere: on one
worker a delta used to cost, per socket, a copy of the message, a queue, a task to receive it,
Channels' ``asyncio.wait`` and dispatch, and a coroutine into Daphne — more than writing the
frame itself.

Order per socket (``InOrder``): a socket handles one message at a time. A message published
here while the socket is idle and has nothing waiting is written at once when it is a plain
delta (``fast``); anything else, and everything that comes while the socket is busy (connecting
and catching up, rendering, handling a message from the channel layer), waits in the socket's
backlog and is handled in order by one task in the socket's own context. So a delta never
overtakes the ``turn.created`` (or snapshot) still being handled, and what a socket was sent
while catching up is trimmed, not doubled (``live.SocketOffsets``).

Messages from other workers still reach each socket through the channel layer; a message this
process also sent over the channel layer carries ``ORIGIN`` so that its own sockets, which
already had it from here, skip it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chat.channel_layer import copy_message

log = logging.getLogger(__name__)

# Tags the messages this process published over the channel layer (``live.publish``).
ORIGIN = uuid.uuid4().hex
ORIGIN_KEY = "origin"


class Viewer(Protocol):
    channel_name: str

    def deliver(self, message: dict) -> None:
        """Take one message of the thread, in order; never blocks."""


# thread id → socket channel → its viewer, for the sockets of this process.
_viewers: dict[int, dict[str, tuple[Viewer, asyncio.AbstractEventLoop]]] = {}


def join(thread_id: int, viewer: Viewer) -> None:
    """From now on ``viewer`` gets every message published in this process for the thread.
    Called on the viewer's event loop (its messages are handed over on it)."""
    loop = asyncio.get_running_loop()
    _viewers.setdefault(thread_id, {})[viewer.channel_name] = (viewer, loop)


def leave(thread_id: int, viewer: Viewer) -> None:
    members = _viewers.get(thread_id)
    if members is not None and members.pop(viewer.channel_name, None) and not members:
        del _viewers[thread_id]


def local_channels(thread_id: int) -> set[str]:
    """The channels of this process's sockets on the thread (they need no channel-layer copy)."""
    return set(_viewers.get(thread_id, ()))


def deliver(thread_id: int, message: dict) -> None:
    """Hand ``message`` to each socket of the thread in this process. From another thread (a
    sync view publishing through ``async_to_sync``) it is handed over on each socket's loop."""
    members = _viewers.get(thread_id)
    if not members:
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for viewer, loop in list(members.values()):
        if loop is running:
            viewer.deliver(message)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(viewer.deliver, copy_message(message))


def from_here(message: dict) -> bool:
    """A channel-layer message this process published (its sockets had it from ``deliver``)."""
    return message.get(ORIGIN_KEY) == ORIGIN


class InOrder:
    """One socket's messages, handled one at a time in the order they came.

    ``dispatch`` is for what Channels' receive loop hands the socket (the browser's frames, the
    channel layer's messages); ``deliver`` for what this process publishes. ``fast(message)``
    handles a message synchronously when it can (True) — only ever called while nothing else
    is being handled or waits; ``handle`` is the socket's ordinary (async) handler."""

    def __init__(
        self,
        handle: Callable[[dict], Awaitable[None]],
        fast: Callable[[dict], bool],
        context: contextvars.Context,
    ) -> None:
        self.handle = handle
        self.fast = fast
        self.context = context
        self.backlog: deque[dict] = deque()
        self._lock = asyncio.Lock()
        # Handlers running or waiting for the lock (a released lock may still have a waiter).
        self._active = 0
        self._drainer: asyncio.Task[None] | None = None

    async def dispatch(self, message: dict) -> None:
        self._active += 1
        try:
            async with self._lock:
                await self.handle(message)
        finally:
            self._active -= 1

    def deliver(self, message: dict) -> None:
        if not self._active and not self.backlog and self.fast(message):
            return
        # Copied: the runner goes on changing what it published (as the channel layer copies).
        self.backlog.append(copy_message(message))
        if self._drainer is None or self._drainer.done():
            self._active += 1
            self._drainer = asyncio.get_running_loop().create_task(
                self._drain(), context=self.context
            )

    async def _drain(self) -> None:
        try:
            async with self._lock:
                while self.backlog:
                    try:
                        await self.handle(self.backlog.popleft())
                    except Exception:  # as a failed handler of Channels' would be: logged
                        log.exception("a socket could not handle a live message")
        finally:
            self._active -= 1

    def close(self) -> None:
        """The socket is gone: nothing more is handled."""
        self.backlog.clear()
        if self._drainer is not None and self._drainer is not asyncio.current_task():
            self._drainer.cancel()


# -- writing a frame without a coroutine -------------------------------------------------------


def frame_writer(send: Any) -> Callable[[str], None] | None:
    """A synchronous ``websocket.send`` for the ASGI ``send`` Daphne gave a socket, or None
    under another server (or a test communicator): the socket's handler then sends as usual.

    Daphne's ``send`` is ``partial(server.handle_reply, protocol)``, a coroutine that checks the
    connection is still there and calls the protocol; this does the same without creating and
    running a coroutine per frame (a delta, every socket, every coalescing window)."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    handle_reply = send.func
    server = getattr(handle_reply, "__self__", None)
    if getattr(handle_reply, "__name__", "") != "handle_reply" or not hasattr(
        server, "connections"
    ):
        return None
    protocol = send.args[0]
    if not hasattr(protocol, "sendMessage") or not hasattr(protocol, "STATE_OPEN"):
        return None
    connections = server.connections

    def write(text: str) -> None:
        details = connections.get(protocol)
        if details is None or details.get("disconnected") or protocol.state != protocol.STATE_OPEN:
            return  # closing: Daphne tells the socket (``websocket.disconnect``)
        protocol.sendMessage(text.encode(), False)

    return write
