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

Messages from other workers come through the channel layer (``follow``). With the in-process
layer each socket is a member of its thread's group (``publish`` skips the sockets it handed
the message to). With Redis, the worker is: one relay per thread (``_Relay``) holds the only
membership of this worker and hands what other workers publish to its sockets here — one Redis
message per worker per delta, not one per socket. A message this process sent over Redis
carries ``ORIGIN``; the relay skips that copy coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import sys
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from chat.channel_layer import RECONNECTED, LocalChannelLayer, copy_message

log = logging.getLogger(__name__)

# Tags the messages this process published over the channel layer (``live.publish``).
ORIGIN = uuid.uuid4().hex
ORIGIN_KEY = "origin"
# Deltas waiting for a busy socket, at most (the in-process layer's channel capacity).
MAX_BACKLOG = 100


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


def leave(thread_id: int, viewer: Viewer) -> bool:
    """Whether ``viewer`` was following the thread (it no longer is)."""
    members = _viewers.get(thread_id)
    if members is None or members.pop(viewer.channel_name, None) is None:
        return False
    if not members:
        del _viewers[thread_id]
    return True


# socket channel → the relay it counts in (its own: a failed relay is replaced by a new one).
_relay_of: dict[str, _Relay] = {}


def relayed(layer: Any) -> bool:
    """Whether the thread's messages from other workers come through this worker's relay
    (a shared layer), not through each socket's own group membership."""
    return not isinstance(layer, LocalChannelLayer)


async def follow(layer: Any, group: str, thread_id: int, viewer: Viewer) -> None:
    """From now on ``viewer`` gets every message of the thread, from this process and (once
    this returns) from the others."""
    join(thread_id, viewer)
    if relayed(layer):
        relay = _relay_of[viewer.channel_name] = _Relay.of(layer, group, thread_id)
        await relay.joined()
    else:
        await layer.group_add(group, viewer.channel_name)


async def unfollow(layer: Any, group: str, thread_id: int, viewer: Viewer) -> None:
    if leave(thread_id, viewer) and not relayed(layer):
        await layer.group_discard(group, viewer.channel_name)
    if relay := _relay_of.pop(viewer.channel_name, None):
        relay.release()


def abandon(thread_id: int, viewer: Viewer) -> None:
    """``unfollow`` for a socket whose task is ending (nothing left to await on)."""
    leave(thread_id, viewer)
    if relay := _relay_of.pop(viewer.channel_name, None):
        relay.release()


class _Relay:
    """This worker's one membership of a thread's group on Redis, while it has sockets there."""

    _running: dict[tuple[asyncio.AbstractEventLoop, int], _Relay] = {}

    def __init__(self, layer: Any, group: str, thread_id: int) -> None:
        self.layer, self.group, self.thread_id = layer, group, thread_id
        self.sockets = 0
        self.channel = ""
        loop = asyncio.get_running_loop()
        self._key = (loop, thread_id)
        self._ready: asyncio.Future[None] = loop.create_future()
        # Its own context: it outlives the socket that started it.
        self._task = loop.create_task(self._run(), context=contextvars.Context())

    @classmethod
    def of(cls, layer: Any, group: str, thread_id: int) -> _Relay:
        key = (asyncio.get_running_loop(), thread_id)
        relay = cls._running.get(key)
        if relay is None:
            relay = cls._running[key] = cls(layer, group, thread_id)
        relay.sockets += 1
        return relay

    def release(self) -> None:
        """One socket fewer; the last one gone, the worker leaves the group."""
        self.sockets -= 1
        if self.sockets <= 0:
            if self._running.get(self._key) is self:
                del self._running[self._key]
            self._task.cancel()

    async def joined(self) -> None:
        """Once this worker is a member of the group (raises what joining raised)."""
        await asyncio.shield(self._ready)

    async def _run(self) -> None:
        try:
            self.channel = await self.layer.new_channel()
            await self.layer.group_add(self.group, self.channel)
        except BaseException as exc:
            if self._running.get(self._key) is self:  # the next socket tries again
                del self._running[self._key]
            if isinstance(exc, asyncio.CancelledError):
                self._ready.cancel()
            else:
                self._ready.set_exception(exc)
            raise
        self._ready.set_result(None)
        from chat.live import with_html  # (chat.live publishes through this module)

        try:
            while True:
                message = await self.layer.receive(self.channel)
                if not from_here(message):
                    # Redis came back (``channel_layer.reconnected``): each socket fetches what
                    # it missed; anything else as if published here.
                    deliver(self.thread_id, with_html(message))
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nothing to leave
                asyncio.get_running_loop().create_task(self._leave_group())

    async def _leave_group(self) -> None:
        try:
            await self.layer.group_discard(self.group, self.channel)
        except Exception:  # Redis down: the membership expires with the group
            log.warning("could not leave %s", self.group)


def own_reconnection(message: dict, layer: Any) -> bool:
    """A socket's own ``channel_layer.reconnected`` where its thread's relay sends one too."""
    return message.get("type") == RECONNECTED and relayed(layer)


def local_channels(thread_id: int) -> Collection[str]:
    """The channels of this process's sockets on the thread (they need no channel-layer copy);
    a view, not a copy: it is read once per published message."""
    return _viewers.get(thread_id, {}).keys()


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
        if loop is not running:
            if not loop.is_closed():
                loop.call_soon_threadsafe(viewer.deliver, copy_message(message))
            continue
        try:
            viewer.deliver(message)
        except Exception:  # one broken socket must not stop the publisher or the others
            log.exception("could not hand a live message to socket %s", viewer.channel_name)


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
        if len(self.backlog) >= MAX_BACKLOG and message.get("type") == "turn.delta":
            return  # as a full channel would: the socket sees the gap and fetches the answer
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
    # Twisted's plain TCP transport is written to directly; TLS and others through ``write``.
    tcp = sys.modules.get("twisted.internet.tcp")
    direct = tcp is not None and isinstance(protocol.transport, tcp.Connection)

    def write(text: str) -> None:
        details = connections.get(protocol)
        if details is None or details.get("disconnected") or protocol.state != protocol.STATE_OPEN:
            return  # closing: Daphne tells the socket (``websocket.disconnect``)
        payload = text.encode()
        if not _plain_frames(protocol):
            protocol.sendMessage(payload, False)
        elif direct:
            send_now(protocol.transport, text_frame_header(len(payload)) + payload)
        else:
            protocol.transport.write(text_frame_header(len(payload)) + payload)

    return write


def send_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)`` on a Twisted TCP transport (``twisted.internet.tcp.Connection``),
    but sent to the socket now when nothing is queued before it.

    Twisted's TCP transport only buffers a write and asks the reactor to tell it when the
    socket is writable: the frame leaves on the loop's next pass, after everything queued on
    it (a new turn's first delta waited that long at 100 streams), and every frame costs a
    writer registered and removed again. asyncio's own transports try the socket first; this
    does the same. What the socket does not take, or a socket error, goes through Twisted's
    write as before (it sends the rest, or finds the error and closes the connection)."""
    if (
        transport.dataBuffer
        or transport._tempDataBuffer
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnected
    ):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except OSError:  # would block, or the connection failed: Twisted's write handles both
        sent = 0
    if sent < len(data):
        transport.write(data[sent:])


def _plain_frames(protocol: Any) -> bool:
    """Whether a whole text message may go out as one unmasked, uncompressed frame written
    straight to the transport: how autobahn itself sends it on a Daphne socket, minus its
    per-frame bookkeeping (traffic counters, and debug-log arguments formatted even with
    debug logging off — a third of its cost per frame). Otherwise autobahn sends it."""
    return (
        getattr(protocol, "_perMessageCompress", True) is None
        and not protocol.send_queue
        and protocol.send_state == protocol.SEND_STATE_GROUND
        and not protocol.autoFragmentSize
        and not protocol.maskServerFrames
        and not protocol.logFrames
        and not protocol.logOctets
        and not protocol.trackedTimings
    )


def text_frame_header(length: int) -> bytes:
    """RFC 6455 §5.2: FIN and the text opcode, then the payload length, unmasked (a server's)."""
    if length <= 125:
        return bytes((0x81, length))
    if length <= 0xFFFF:
        return bytes((0x81, 126)) + length.to_bytes(2, "big")
    return bytes((0x81, 127)) + length.to_bytes(8, "big")
