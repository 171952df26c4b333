"""Daphne's periodic checks, in time with the connections that need them, not with all of them.

Daphne walks every connection once a second (``Server.application_checker``: reap finished
applications, cancel those that outlive their disconnection) and every two seconds
(``Server.timeout_checker``: each protocol's ``check_timeouts``, the websocket pings). A py-spy
profile of a Daphne process holding 5,000 idle websockets (bench #15) put nearly all of its
idle CPU there, 3 to 4 % of a core: it grows with the open sockets, not with anything
happening (daphne#192). After ``install``:

- the application check visits only the connections that disconnected or whose application
  ended (both are signalled: ``protocol_disconnected``, the application task's completion),
  and does for them exactly what Daphne's does;
- an open websocket's timeouts are checked when one can be due: its next ping (``last_ping``
  + ``ping_interval``, ``last_ping`` moved on by every message the browser sends) or the end of
  ``websocket_timeout``. Everything else (HTTP requests, sockets still in their handshake,
  closing ones) is checked on every pass, as Daphne does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import sys
import time
import weakref
from typing import Any

log = logging.getLogger("daphne.server")  # Daphne's own messages, under its logger

_CHECK_EVERY = 2.0  # seconds, Daphne's timeout_checker period


class _State:
    """Per server: the connections the application check must visit; the open websockets by
    the checker's pass in which their timeouts are next due (a weak reference each, in a list
    per pass: 80 bytes a socket); every other connection, checked on every pass. Keyed by
    ``id``: Daphne's protocols hash in Python, too slow to look up for every socket."""

    def __init__(self) -> None:
        self.attention: set[Any] = set()
        self.due: dict[int, list[weakref.ref]] = {}
        self.others: dict[int, Any] = {}

    def schedule(self, server: Any, protocol: Any, now: float) -> None:
        at = protocol.last_ping + server.ping_interval
        if server.websocket_timeout >= 0:
            at = min(at, protocol.socket_opened + server.websocket_timeout)
        # Daphne's comparisons are strict, and it looks every 2 s: not before the next pass.
        # A weak reference: a closed socket is not kept until its next ping would be due.
        slot = math.ceil(max(at, now + 0.001) / _CHECK_EVERY)
        self.due.setdefault(slot, []).append(weakref.ref(protocol))

    def take_due(self, now: float) -> list[Any]:
        """The scheduled sockets due by ``now`` (those still alive), no longer scheduled."""
        last = math.floor(now / _CHECK_EVERY)
        due = []
        for slot in [slot for slot in self.due if slot <= last]:
            due.extend(ref() for ref in self.due.pop(slot))
        return due


_CALLBACK_CONTEXT = contextvars.Context()


def _needs_attention(server: Any, protocol: Any, _done: object) -> None:
    _state(server).attention.add(protocol)


def _state(server: Any) -> _State:
    state = server.__dict__.get("_switchboard_checks")
    if state is None:
        state = server._switchboard_checks = _State()
    return state


def install() -> bool:
    """Under Daphne: its periodic checks follow the connections that need them."""
    server_module = sys.modules.get("daphne.server")
    ws_module = sys.modules.get("daphne.ws_protocol")
    if server_module is None or ws_module is None:
        return False
    server_class = server_module.Server
    if getattr(server_class, "_switchboard_checks_installed", False):
        return False
    connected, disconnected, create_application = (
        server_class.protocol_connected,
        server_class.protocol_disconnected,
        server_class.create_application,
    )

    def protocol_connected(self, protocol) -> None:
        connected(self, protocol)
        _state(self).others[id(protocol)] = protocol

    def protocol_disconnected(self, protocol) -> None:
        disconnected(self, protocol)
        _state(self).attention.add(protocol)

    def create_application_watched(self, protocol, scope):
        queue = create_application(self, protocol, scope)
        instance = self.connections.get(protocol, {}).get("application_instance")
        if instance is not None:
            # One small partial per connection, run in one shared context (not a copy each).
            instance.add_done_callback(
                functools.partial(_needs_attention, self, protocol), context=_CALLBACK_CONTEXT
            )
        return queue

    server_class.protocol_connected = protocol_connected
    server_class.protocol_disconnected = protocol_disconnected
    server_class.create_application = create_application_watched
    server_class.application_checker = _application_checker
    server_class.timeout_checker = _timeout_checker
    socket_class = ws_module.WebSocketProtocol
    opened = socket_class.onOpen

    def on_open(self) -> None:
        opened(self)
        # Only a socket Daphne counted (``protocol_connected``) and now open is scheduled.
        if getattr(self, "state", None) != self.STATE_OPEN:
            return
        state = _state(self.server)
        if state.others.pop(id(self), None) is not None:
            state.schedule(self.server, self, time.time())

    socket_class.onOpen = on_open
    server_class._switchboard_checks_installed = True
    return True


def _application_checker(self) -> None:
    from twisted.internet import reactor

    check_applications(self)
    reactor.callLater(1, self.application_checker)


def _timeout_checker(self) -> None:
    from twisted.internet import reactor

    check_timeouts(self)
    reactor.callLater(_CHECK_EVERY, self.timeout_checker)


def check_applications(server: Any) -> None:
    """Daphne's ``Server.application_checker``, for the connections that need it."""
    state = _state(server)
    visiting, state.attention = state.attention, set()
    for protocol in visiting:
        details = server.connections.get(protocol)
        if details is None:
            continue
        disconnected = details.get("disconnected", None)
        application_instance = details.get("application_instance", None)
        # The protocol disconnected and the application took too long to close up.
        if (
            disconnected
            and time.time() - disconnected > server.application_close_timeout
            and application_instance
            and not application_instance.done()
        ):
            log.warning(
                "Application instance %r for connection %s took too long to shut down "
                "and was killed.",
                application_instance,
                repr(protocol),
            )
            application_instance.cancel()
        # The application is done: reap it.
        if application_instance and application_instance.done():
            try:
                exception = application_instance.exception()
            except asyncio.CancelledError:
                pass
            else:
                if exception:
                    if isinstance(exception, KeyboardInterrupt):
                        server.stop()  # asking the server to exit (likely during a test)
                    else:
                        log.error(
                            "Exception inside application: %s", exception, exc_info=exception
                        )
                        if not disconnected:
                            protocol.handle_exception(exception)
            del details["application_instance"]
            application_instance = None
        if not application_instance and disconnected:
            del server.connections[protocol]
        elif disconnected:  # its application has yet to end: look again next time
            state.attention.add(protocol)


def check_timeouts(server: Any) -> None:
    """Daphne's ``Server.timeout_checker``: open websockets when due, the others every pass."""
    state = _state(server)
    now = time.time()
    connections = server.connections
    due = state.take_due(now)
    closing = []
    for protocol in due:
        if protocol is None or protocol not in connections:
            continue  # gone: nothing more to check
        protocol.check_timeouts()
        if protocol.state == protocol.STATE_OPEN:
            state.schedule(server, protocol, now)
        else:
            closing.append(protocol)
    for key, protocol in list(state.others.items()):
        if protocol in connections:
            protocol.check_timeouts()
        else:
            del state.others[key]
    for protocol in closing:  # checked on every pass from now on, as by Daphne
        state.others[id(protocol)] = protocol
