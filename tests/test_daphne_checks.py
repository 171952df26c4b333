"""Daphne's periodic checks visit the connections that need them, not every open socket
(chat.daphne_checks): pings still go out on time, finished applications are still reaped."""

import asyncio
from types import SimpleNamespace

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from chat import daphne_checks

daphne_checks.install()  # what project/asgi.py does under Daphne

T0 = 1_000_000.0


@pytest.fixture
def server():
    async def application(scope, receive, send):
        await receive()  # runs until the connection says it is gone

    # An endpoint Daphne insists on; the server is never started here.
    server = Server(application, endpoints=["tcp:port=0"], ping_interval=20)
    server.connections = {}  # Daphne sets it when it starts serving
    return server


class Socket(WebSocketProtocol):
    """Daphne's websocket protocol, its timeout checks as they are; pings and checks counted."""

    def __init__(self, server: Server, opened_at: float) -> None:  # no network connection
        self.server = server
        self.client_addr, self.request = None, SimpleNamespace(path="/ws/threads/1/")
        self.http_headers, self.clean_headers = {}, []  # what an open socket lets go of
        self.state = self.STATE_CONNECTING
        self.socket_opened = self.last_ping = opened_at
        self.pings: list[float] = []
        self.checks = 0

    def check_timeouts(self) -> None:
        self.checks += 1
        super().check_timeouts()

    def _sendAutoPing(self) -> None:  # Daphne's name
        self.pings.append(self.last_ping)

    def open(self) -> None:
        self.state = self.STATE_OPEN
        self.onOpen()  # Daphne's, with the checks' hook


def connect(server: Server, at: float) -> Socket:
    socket = Socket(server, at)
    server.protocol_connected(socket)
    return socket


@pytest.fixture
def clock(monkeypatch):
    """Daphne's clock (``time.time``), moved by the test."""
    now = [T0]
    monkeypatch.setattr(daphne_checks.time, "time", lambda: now[0])
    return now


def check_at(server: Server, clock: list[float], at: float) -> None:
    """A pass of Daphne's timeout checker at ``at``."""
    clock[0] = at
    daphne_checks.check_timeouts(server)


def test_an_idle_socket_is_not_checked_until_its_ping_is_due_then_pinged(server, clock):
    socket = connect(server, T0)
    socket.open()
    for at in (T0 + 2, T0 + 10, T0 + 18):
        check_at(server, clock, at)
    assert socket.checks == 0 and socket.pings == []
    check_at(server, clock, T0 + 22)
    assert socket.checks == 1 and socket.pings == [T0]  # pinged: 20 s without a word
    check_at(server, clock, T0 + 24)
    assert socket.checks == 1  # the next one is due 20 s after this ping
    check_at(server, clock, T0 + 44)
    assert len(socket.pings) == 2


def test_a_message_from_the_browser_puts_the_ping_off(server, clock):
    socket = connect(server, T0)
    socket.open()
    socket.last_ping = T0 + 15  # Daphne moves it on every message received
    check_at(server, clock, T0 + 22)
    assert socket.checks == 1 and socket.pings == []  # looked when it could be due: not yet
    check_at(server, clock, T0 + 36)
    assert len(socket.pings) == 1


def test_sockets_in_their_handshake_are_checked_on_every_pass_and_refused_late(server, clock):
    socket = connect(server, T0)  # never opened
    rejected = []
    socket.serverReject = lambda: rejected.append(clock[0])  # Daphne's name
    for at in (T0 + 2, T0 + 4, T0 + 22):
        check_at(server, clock, at)
    assert socket.checks == 3
    assert rejected == [T0 + 22]  # past websocket_connect_timeout (20 s)


def test_a_closed_socket_is_dropped_and_not_kept_alive_by_the_schedule(server, clock):
    socket = connect(server, T0)
    socket.open()
    del server.connections[socket]  # Daphne forgot it: disconnected and reaped
    check_at(server, clock, T0 + 30)
    assert socket.checks == 0
    state = daphne_checks._state(server)
    assert state.due == {} and state.others == {}


async def test_only_connections_that_disconnected_or_ended_are_visited_and_reaped(server):
    sockets = [connect(server, T0) for _ in range(3)]
    queues = [server.create_application(s, {"type": "websocket"}) for s in sockets]
    await asyncio.sleep(0)
    gone, ended, idle = sockets
    server.protocol_disconnected(gone)
    queues[0].put_nowait({"type": "websocket.disconnect"})
    queues[1].put_nowait({"type": "websocket.disconnect"})  # its application ends by itself
    await asyncio.sleep(0.01)
    assert daphne_checks._state(server).attention == {gone, ended}
    daphne_checks.check_applications(server)
    assert gone not in server.connections  # application ended, socket gone: forgotten
    assert "application_instance" not in server.connections[ended]  # reaped, still connected
    assert "application_instance" in server.connections[idle]  # still running, not visited
    assert daphne_checks._state(server).attention == set()
    server.connections[idle]["application_instance"].cancel()
