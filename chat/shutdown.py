"""A worker asked to stop (SIGTERM: a deploy, ``systemctl stop``) hands its work over cleanly.

Daphne runs Twisted's reactor, whose SIGTERM handler stops the reactor; Twisted first runs the
"before shutdown" triggers and waits for the Deferreds they return. Ours (``install``):

1. stops listening, so new connections go to the other workers (the proxy retries them);
2. refuses new turns in this process (a request already under way gets a clear refusal);
3. closes this worker's websockets with 1012 ("service restart"), which the page's websocket
   extension retries: the viewers come back on another worker and follow the running answers
   there, through the runner channel, from the blocks they already hold;
4. lets the running turns finish for up to ``SHUTDOWN_GRACE_SECONDS``, then interrupts those
   still running: each is stored with all its text so far (status interrupted, Retry offered,
   "the server restarted"), and its viewers are told;
5. returns, and Daphne exits.

Without it the reactor stopped at once: running answers stayed "in progress" until another
worker's reaper noticed the stale heartbeat, and lost what was written since the last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from django.conf import settings

log = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 1012
# After the grace period, how long interrupted turns may take to be stored (a database write
# and a message each).
STORE_SECONDS = 10.0


def install() -> bool:
    """Hook ``drain`` into the reactor's shutdown when running under Daphne (not in tests or
    management commands). Returns whether it was installed."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not hasattr(reactor, "_asyncioEventloop"):
        return False
    reactor.addSystemEventTrigger("before", "shutdown", _on_shutdown, reactor)
    return True


def _on_shutdown(reactor):
    from twisted.internet import defer

    _stop_listening(reactor)
    _close_websockets(reactor)
    future = asyncio.ensure_future(
        drain(settings.SHUTDOWN_GRACE_SECONDS), loop=reactor._asyncioEventloop
    )
    return defer.Deferred.fromFuture(future)


def _stop_listening(reactor) -> None:
    from twisted.internet import tcp

    for reader in reactor.getReaders():
        if isinstance(reader, tcp.Port):  # listening sockets (unix ones too), not connections
            reader.stopListening()


def _close_websockets(reactor) -> None:
    """Close every websocket with 1012, "service restart", which browsers retry. Done on
    Daphne's connections: the ASGI close goes through autobahn's ``sendClose``, which refuses
    any code but 1000 and 3000-4999 (and 1000 is not retried)."""
    from autobahn.websocket.protocol import WebSocketProtocol

    for reader in reactor.getReaders():
        protocol = getattr(reader, "protocol", None)
        if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
            protocol.sendCloseFrame(code=CLOSE_SERVICE_RESTART)


async def drain(grace: float) -> None:
    """Stop taking turns, then finish or interrupt the running ones."""
    from chat.services.turns import registry

    started = time.monotonic()
    registry.accepting_turns = False
    finished, interrupted = await registry.finish_running_turns(
        grace=grace, store_within=STORE_SECONDS
    )
    log.warning(
        "shutting down: %d turn(s) finished, %d interrupted and stored, in %.1f s",
        finished,
        interrupted,
        time.monotonic() - started,
    )
