"""One socket's ordered path for what its own process publishes (``chat.live_local.InOrder``)."""

import asyncio
import contextvars
import socket

import pytest

from chat import live_local


def _delta(n: int) -> dict:
    return {"type": "turn.delta", "turn_id": 1, "n": n}


class _Socket:
    """Handles messages slowly (a render in the database thread, say); writes deltas at once
    when asked to."""

    def __init__(self, expected: int = 0) -> None:
        self.seen: list[tuple[str, object]] = []
        self.order = live_local.InOrder(self.handle, self.fast, contextvars.copy_context())
        self.expected = expected
        self.all_handled = asyncio.Event()

    async def handle(self, message: dict) -> None:
        await asyncio.sleep(0.01)
        self.seen.append(("handled", message.get("n", message["type"])))
        if len(self.seen) == self.expected:
            self.all_handled.set()

    def fast(self, message: dict) -> bool:
        if message["type"] != "turn.delta":
            return False
        self.seen.append(("written", message["n"]))
        return True


async def test_what_comes_while_a_socket_is_busy_is_handled_after_it_in_order():
    sock = _Socket(expected=4)
    busy = asyncio.ensure_future(sock.order.dispatch({"type": "turn.created"}))
    await asyncio.sleep(0)  # the handler has started
    sock.order.deliver(_delta(1))
    sock.order.deliver({"type": "turn.updated", "n": "updated"})
    sock.order.deliver(_delta(2))
    await busy
    await asyncio.wait_for(sock.all_handled.wait(), 5)
    assert sock.seen == [
        ("handled", "turn.created"),
        ("handled", 1),
        ("handled", "updated"),
        ("handled", 2),
    ]
    sock.order.deliver(_delta(3))  # idle, nothing waiting: written at once
    assert sock.seen[-1] == ("written", 3)


async def test_a_socket_far_behind_misses_deltas_but_not_the_turns_end():
    sock = _Socket()
    busy = asyncio.ensure_future(sock.order.dispatch({"type": "path.changed"}))
    await asyncio.sleep(0)
    for n in range(live_local.MAX_BACKLOG + 50):
        sock.order.deliver(_delta(n))
    sock.order.deliver({"type": "turn.finished", "n": "finished"})
    assert len(sock.order.backlog) == live_local.MAX_BACKLOG + 1
    assert sock.order.backlog[-1]["type"] == "turn.finished"
    busy.cancel()
    sock.order.close()


async def test_a_published_message_is_not_changed_by_its_publisher_afterwards():
    sock = _Socket()
    busy = asyncio.ensure_future(sock.order.dispatch({"type": "path.changed"}))
    await asyncio.sleep(0)
    message = {"type": "turn.delta", "n": 1, "blocks": ["<p>a</p>"]}
    sock.order.deliver(message)
    message["blocks"].append("<p>b</p>")  # the runner goes on with its own lists
    assert sock.order.backlog[0]["blocks"] == ["<p>a</p>"]
    await busy
    sock.order.close()


def test_a_delta_frame_has_the_header_rfc_6455_gives_each_length():
    assert live_local.text_frame_header(5) == b"\x81\x05"
    assert live_local.text_frame_header(125) == b"\x81\x7d"
    assert live_local.text_frame_header(126) == b"\x81\x7e\x00\x7e"
    assert live_local.text_frame_header(65535) == b"\x81\x7e\xff\xff"
    assert live_local.text_frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")


class _Reactor:
    """Records what a Twisted transport asks of its reactor: to be told when it may write."""

    def __init__(self) -> None:
        self.writers: set[object] = set()

    def addWriter(self, writer) -> None:  # Twisted's interface
        self.writers.add(writer)

    def removeWriter(self, writer) -> None:  # Twisted's interface
        self.writers.discard(writer)


@pytest.fixture
def twisted_socket():
    """A Twisted TCP transport on one end of a socket pair, the browser on the other."""
    from twisted.internet import tcp

    ours, browser = socket.socketpair()
    reactor = _Reactor()
    transport = tcp.Connection(ours, protocol=None, reactor=reactor)
    transport.connected = True
    yield transport, browser, reactor
    ours.close()
    browser.close()


def received(browser: socket.socket) -> bytes:
    browser.setblocking(False)
    try:
        return browser.recv(1 << 20)
    except BlockingIOError:
        return b""


def test_a_frame_goes_to_the_socket_at_once_not_on_the_loops_next_pass(twisted_socket):
    transport, browser, reactor = twisted_socket
    live_local.send_now(transport, b"frame 1")
    assert received(browser) == b"frame 1"
    assert not reactor.writers  # nothing left for the reactor to write


def test_a_frame_waits_behind_what_twisted_still_has_to_send(twisted_socket):
    transport, browser, reactor = twisted_socket
    transport.write(b"the announcement")  # Twisted's own write: sent on the reactor's next pass
    live_local.send_now(transport, b"the first delta")
    assert received(browser) == b""
    assert reactor.writers == {transport}
    transport.doWrite()  # the reactor's next pass
    assert received(browser) == b"the announcement" + b"the first delta"


def test_what_a_full_socket_does_not_take_is_sent_by_twisted_after_it(twisted_socket):
    transport, browser, reactor = twisted_socket
    frame = bytes(range(256)) * 40_000  # more than the socket pair's buffers hold
    live_local.send_now(transport, frame)
    assert reactor.writers == {transport}
    got = b""
    while reactor.writers:  # the reactor's passes, the socket writable again each time
        got += received(browser)
        transport.doWrite()
    got += received(browser)
    assert got == frame
    assert not reactor.writers
