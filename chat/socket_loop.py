"""What an idle websocket keeps while it waits: one small queue and one wait, not two tasks.

Measured with tracemalloc in a Daphne process holding 1,000 idle sockets (bench #15), two of
the largest per-socket costs were plumbing, not state:

- Daphne gives every connection an ``asyncio.Queue`` for what the browser sends (three deques
  and an ``Event``: 3.2 KB). Only ``put_nowait`` and ``get`` are used on it, so ``install``
  makes Daphne create an ``Inbox`` (``chat.channel_layer``), unbounded as Daphne's queue is.
- Channels' consumer loop (``await_many_dispatch``) keeps two tasks per socket, one waiting on
  that queue and one on the channel layer, and an ``asyncio.wait`` around them (3.5 KB).
  ``OneWaitConsumer`` waits on both queues with one future instead, when both are queues it
  knows (Daphne's ``Inbox`` or the test communicator's ``asyncio.Queue``, and the in-process
  channel layer); otherwise (Redis) Channels' loop runs unchanged.
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
import sys
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from chat.channel_layer import Inbox, LocalChannelLayer, Queue


def _browser_queue(consumer: AsyncWebsocketConsumer, receive: Any) -> Queue | None:
    """The browser's queue behind ``receive`` when one wait can serve this consumer."""
    browser = getattr(receive, "__self__", None)
    usable = isinstance(browser, Inbox | asyncio.Queue) and receive.__name__ == "get"
    layer = get_channel_layer(consumer.channel_layer_alias)
    return browser if usable and isinstance(layer, LocalChannelLayer) else None


class OneWaitConsumer(AsyncWebsocketConsumer):
    """``AsyncWebsocketConsumer`` whose idle socket waits on the browser's queue and its
    channel inbox with one future (see the module's docstring); same handlers, same order."""

    groups = ()  # Channels gives each consumer its own empty list otherwise

    async def __call__(self, scope, receive, send) -> None:
        browser = _browser_queue(self, receive)
        if browser is None:
            await super().__call__(scope, receive, send)
            return
        self.scope = scope
        del scope  # only ``self.scope`` keeps it, so the consumer can slim it once connected
        self.channel_layer: LocalChannelLayer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        start = 0
        with contextlib.suppress(StopConsumer):
            while True:
                source, message = await self.channel_layer.receive_or(
                    self.channel_name, browser, start
                )
                start = 1 - source  # the other queue first next time
                await self.dispatch(message)


def install() -> bool:
    """Under Daphne: each connection's queue is an ``Inbox``, and an open socket lets go of its
    handshake (``_release_handshake``). Returns whether it applied."""
    server = sys.modules.get("daphne.server")
    protocol = sys.modules.get("daphne.ws_protocol")
    if server is None or protocol is None or isinstance(server.asyncio, _AsyncioWithInboxQueues):
        return False
    # ``Server.create_application`` makes the queue as ``asyncio.Queue()``, asyncio being
    # looked up in its module: that module sees asyncio with ``Queue`` an unbounded Inbox.
    server.asyncio = _AsyncioWithInboxQueues()
    opened = protocol.WebSocketProtocol.onOpen

    def on_open(self) -> None:
        opened(self)
        _release_handshake(self)

    protocol.WebSocketProtocol.onOpen = on_open
    made = protocol.WebSocketProtocol._connectionMade

    def connection_made(self) -> None:
        _share_factory_settings(self)
        made(self)

    protocol.WebSocketProtocol._connectionMade = connection_made
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


class _AsyncioWithInboxQueues:
    """``asyncio`` as ``daphne.server`` sees it once installed: all of it, but ``Queue()``."""

    @staticmethod
    def Queue() -> Inbox:  # stands in for asyncio.Queue
        return Inbox(sys.maxsize)  # unbounded, as Daphne's queue

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)
