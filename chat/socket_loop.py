"""What an idle websocket keeps while it waits: one small queue and one wait, not two tasks.

Measured with tracemalloc in a Daphne process holding 1,000 idle sockets (bench #15), the
largest per-socket costs were plumbing, not state:

- Daphne gives every connection an ``asyncio.Queue`` for what the browser sends (three deques
  and an ``Event``: 3.2 KB). Only ``put_nowait`` and ``get`` are used on it, so ``install``
  makes Daphne create an ``Inbox`` (``chat.channel_layer``) for each websocket, unbounded as
  Daphne's queue is.
- Channels' consumer loop (``await_many_dispatch``) keeps two tasks per socket, one waiting on
  that queue and one on the channel layer, and an ``asyncio.wait`` around them (3.5 KB).
  ``OneWaitConsumer`` waits on both with one future instead: on the in-process layer's
  inbox directly (no task at all), on Redis on one receive task kept across waits
  (``AwaitedLayer``). The browser's queue is Daphne's ``Inbox`` or the test communicator's
  ``asyncio.Queue``; any other ``receive`` gets Channels' loop unchanged.
- Once open, a socket still held its whole opening handshake (the raw request and response,
  and the headers three times: parsed by autobahn, cleaned by Daphne, in the scope): about
  2.5 KB that ``install`` lets go of when Daphne reports the socket open.
- autobahn copied the server's 29 websocket settings into every connection (a 99-key
  ``__dict__``, 3.3 KB); the first server's are now shared on the protocol class.

Messages are dispatched one at a time, as in Channels; when both queues have messages, they
take turns, so a busy thread cannot hold back what the browser sends, nor the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from chat import loop_priority
from chat.channel_layer import Inbox, LocalChannelLayer, Queue, waiters_of


def _browser_queue(receive: Any) -> Queue | None:
    """The browser's queue behind ``receive``, when it is one ``next_of`` can wait on."""
    browser = getattr(receive, "__self__", None)
    usable = isinstance(browser, Inbox | asyncio.Queue) and receive.__name__ == "get"
    return browser if usable else None


class AwaitedLayer:
    """A layer whose ``receive`` must be awaited (channels_redis: a socket's receive may be the
    one reading Redis for the whole process): one receive task at a time, kept across waits,
    and one future waiting on it and on the browser's queue (Channels: a task for each, and
    an ``asyncio.wait`` around them)."""

    def __init__(self, layer: Any, channel: str) -> None:
        self.receive = functools.partial(layer.receive, channel)
        self.task: asyncio.Future[dict] | None = None

    async def receive_or(self, browser: Queue, start: int = 0) -> tuple[int, dict]:
        """(0, the browser's message) or (1, the layer's), ``start``'s first when both wait."""
        while True:
            if self.task is None:
                self.task = asyncio.ensure_future(self.receive())
            ready = (not browser.empty(), self.task.done())
            for source in (start, 1 - start):
                if ready[source]:
                    return source, browser.get_nowait() if source == 0 else self._take()
            waiter = asyncio.get_running_loop().create_future()

            def wake(_task: object, waiter: asyncio.Future[None] = waiter) -> None:
                if not waiter.done():
                    waiter.set_result(None)

            waiters_of(browser).append(waiter)
            self.task.add_done_callback(wake)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    waiters_of(browser).remove(waiter)
                self.task.remove_done_callback(wake)

    def _take(self) -> dict:
        task, self.task = self.task, None
        return task.result()  # the layer's error, if it failed, as in Channels' loop

    async def close(self) -> None:
        """Stop receiving, as Channels' loop does when its consumer ends."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class OneWaitConsumer(AsyncWebsocketConsumer):
    """``AsyncWebsocketConsumer`` whose idle socket waits on the browser's queue and its
    channel layer with one future (see the module's docstring); same handlers, same order."""

    groups = ()  # Channels gives each consumer its own empty list otherwise

    async def __call__(self, scope, receive, send) -> None:
        browser = _browser_queue(receive)
        layer = get_channel_layer(self.channel_layer_alias)
        if browser is None or layer is None:
            await super().__call__(scope, receive, send)
            return
        self.scope = scope
        del scope  # only ``self.scope`` keeps it, so the consumer can slim it once connected
        self.channel_layer = layer
        self.channel_name = await layer.new_channel()
        self.base_send = send
        if isinstance(layer, LocalChannelLayer):  # its inbox is a queue: no task at all
            awaited = None
            next_message = functools.partial(layer.receive_or, self.channel_name, browser)
        else:
            awaited = AwaitedLayer(layer, self.channel_name)
            next_message = functools.partial(awaited.receive_or, browser)
        start = 0
        try:
            with contextlib.suppress(StopConsumer):
                while True:
                    source, message = await next_message(start)
                    start = 1 - source  # the other side first next time
                    await self.dispatch(message)
        finally:
            if awaited is not None:
                await awaited.close()


def install() -> bool:
    """Under Daphne: each websocket's queue is an ``Inbox``, an open socket lets go of its
    handshake, its server's settings are shared. Returns whether it applied."""
    server = sys.modules.get("daphne.server")
    protocol = sys.modules.get("daphne.ws_protocol")
    if server is None or protocol is None or isinstance(server.asyncio, _DaphneAsyncio):
        return False
    # ``Server.create_application`` makes the queue as ``asyncio.Queue()``, asyncio being
    # looked up in its module: that module sees asyncio with ``Queue`` an Inbox for websockets.
    server.asyncio = daphne_asyncio = _DaphneAsyncio()
    create_application = server.Server.create_application

    def create_websocket_or_http_application(self, protocol, scope):
        daphne_asyncio.websocket = scope.get("type") == "websocket"
        try:
            return create_application(self, protocol, scope)
        finally:
            daphne_asyncio.websocket = False

    server.Server.create_application = create_websocket_or_http_application
    socket_class = protocol.WebSocketProtocol
    opened, made = socket_class.onOpen, socket_class._connectionMade

    def on_open(self) -> None:
        opened(self)
        _release_handshake(self)

    def connection_made(self) -> None:
        _share_factory_settings(self)
        made(self)

    socket_class.onOpen, socket_class._connectionMade = on_open, connection_made
    return True


def _share_factory_settings(protocol: Any) -> None:
    """autobahn copies its factory's settings (29 of them) into each connection's ``__dict__``,
    unless the protocol already has them: the first factory's are put on the protocol class
    once (not functions, which would become methods there: autobahn still copies those).
    Connections of another factory (a second server in the process) get their own copy."""
    cls, factory = type(protocol), protocol.factory
    owner = cls.__dict__.get("_settings_of")
    if owner is None:
        for name in cls.CONFIG_ATTRS:
            value = getattr(factory, name)
            if not callable(value):  # a function on the class would become a method
                setattr(cls, name, value)
        cls._settings_of = factory
    elif owner is not factory:
        for name in cls.CONFIG_ATTRS:
            setattr(protocol, name, getattr(factory, name))


def _release_handshake(protocol: Any) -> None:
    """What a Daphne websocket keeps of its opening handshake once it is open, and never reads
    again: autobahn's raw request and response, its parsed headers (also Daphne's
    ``request.headers``; Daphne's log lines read only ``request.path``), and Daphne's cleaned
    header list (also the scope's ``headers``: this app reads them only while connecting)."""
    protocol.http_request_data = protocol.http_response_data = None
    protocol.http_headers.clear()
    protocol.clean_headers.clear()


class BrowserInbox(Inbox):
    """What the browser sends a socket. Its consumer is woken ahead of the relay's queued work
    (``chat.loop_priority``): a message, a stop, a tool's answer is handled as it arrives, not
    after every running stream's pending reads and frames. Browsers send a few messages a
    minute; the streams' own order is unchanged."""

    __slots__ = ()

    def _wake(self) -> None:
        with loop_priority.ahead_of_queued_work():
            super()._wake()


class _DaphneAsyncio:
    """``asyncio`` as ``daphne.server`` sees it once installed: all of it, but ``Queue()``
    while a websocket's application is created. HTTP requests keep ``asyncio.Queue``: Daphne
    queues a whole request body at once, in 8 KB chunks, which an ``Inbox`` (a list) would
    take from the front one at a time."""

    websocket = False

    def Queue(self) -> Inbox | asyncio.Queue:  # stands in for asyncio.Queue
        # Unbounded, as Daphne's.
        return BrowserInbox(sys.maxsize) if self.websocket else asyncio.Queue()

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)
