"""Idle sockets stay cheap and stay subscribed: the in-process layer's channel inboxes."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat import socket_loop
from chat.channel_layer import Inbox, LocalChannelLayer, next_of
from chat.models import Access, ThreadShare
from chat.socket_loop import AwaitedLayer
from tests.ws import ORIGIN, socket


async def test_a_tab_open_for_days_still_gets_its_threads_updates():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("thread-1", channel)
    # Joined two days ago (Channels' in-memory layer forgot members after one day).
    layer.groups["thread-1"][channel] = time.time() - 2 * 86400
    layer._next_clean = 0.0
    await layer.group_send("thread-1", {"type": "turn.delta", "n": 1})
    message = await asyncio.wait_for(layer.receive(channel), 1)
    assert message == {"type": "turn.delta", "n": 1}


async def test_a_waiting_receiver_gets_messages_in_order_and_a_full_inbox_refuses():
    inbox = Inbox(capacity=2)
    receiver = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait((0.0, {"n": 1}))
    inbox.put_nowait((0.0, {"n": 2}))
    with pytest.raises(asyncio.QueueFull):
        inbox.put_nowait((0.0, {"n": 3}))
    assert (await receiver)[1] == {"n": 1}
    assert (await inbox.get())[1] == {"n": 2}
    assert inbox.empty()


async def test_a_cancelled_receiver_passes_its_message_to_the_next():
    inbox = Inbox(capacity=10)
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait((0.0, {"n": 1}))  # wakes the first…
    first.cancel()  # …which is cancelled before it takes it
    assert (await asyncio.wait_for(second, 1))[1] == {"n": 1}


# -- one wait per idle socket (chat/socket_loop.py) -----------------------------------------


async def test_one_wait_takes_from_whichever_queue_gets_a_message_and_then_takes_turns():
    browser, channel = Inbox(capacity=10), Inbox(capacity=10)
    waiting = asyncio.create_task(next_of((browser, channel)))
    await asyncio.sleep(0)
    channel.put_nowait("delta")
    assert await asyncio.wait_for(waiting, 1) == (1, "delta")
    for n in range(2):
        browser.put_nowait(f"frame {n}")
        channel.put_nowait(f"delta {n}")
    # Both have messages: the queue named by ``start`` first, so neither starves the other.
    assert await next_of((browser, channel), start=1) == (1, "delta 0")
    assert await next_of((browser, channel), start=0) == (0, "frame 0")
    assert await next_of((browser, channel), start=1) == (1, "delta 1")
    assert await next_of((browser, channel), start=0) == (0, "frame 1")


async def test_a_cancelled_wait_leaves_nothing_waiting_in_either_queue():
    browser, channel = asyncio.Queue(), Inbox(capacity=10)  # the test communicator's, the layer's
    waiting = asyncio.create_task(next_of((browser, channel)))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not browser._getters and not channel._waiters
    browser.put_nowait({"type": "websocket.receive"})
    assert await asyncio.wait_for(next_of((browser, channel)), 1) == (
        0,
        {"type": "websocket.receive"},
    )


@pytest.fixture
def daphne_installed(monkeypatch):
    """``socket_loop.install()`` applied to Daphne's modules, undone after the test."""
    import daphne.server
    import daphne.ws_protocol

    monkeypatch.setattr(daphne.server, "asyncio", asyncio)
    create_application = daphne.server.Server.create_application
    monkeypatch.setattr(daphne.server.Server, "create_application", create_application)
    protocol_class = daphne.ws_protocol.WebSocketProtocol
    monkeypatch.setattr(protocol_class, "onOpen", protocol_class.onOpen)
    monkeypatch.setattr(protocol_class, "_connectionMade", protocol_class._connectionMade)
    assert socket_loop.install()
    assert not socket_loop.install()  # once is enough
    return daphne.server, daphne.ws_protocol


async def test_daphne_gives_each_connection_an_inbox_that_reaches_the_application(
    daphne_installed,
):
    daphne_server, _ = daphne_installed
    received = []

    async def application(scope, receive, send):
        received.append(await receive())

    server = daphne_server.Server(application, endpoints=["tcp:port=0"])  # never started
    protocol = object()
    server.connections = {protocol: {}}
    queue = server.create_application(protocol, {"type": "websocket"})
    assert isinstance(queue, Inbox)
    queue.put_nowait({"type": "websocket.connect"})
    await asyncio.wait_for(server.connections[protocol]["application_instance"], 1)
    assert received == [{"type": "websocket.connect"}]
    # A request's body is queued whole, in chunks: HTTP keeps asyncio's queue.
    request = object()
    server.connections[request] = {}
    assert isinstance(server.create_application(request, {"type": "http"}), asyncio.Queue)
    server.connections[request]["application_instance"].cancel()


def test_an_open_daphne_socket_lets_go_of_its_handshake_and_still_logs_its_path(
    daphne_installed,
):
    _, ws_protocol = daphne_installed
    logged = []
    protocol = ws_protocol.WebSocketProtocol()
    protocol.server = SimpleNamespace(log_action=lambda *action: logged.append(action))
    protocol.client_addr = ["127.0.0.1", 50000]
    # As autobahn and Daphne left them after the handshake (the scope shares Daphne's list).
    parsed = {"host": "127.0.0.1", "cookie": "sessionid=abc", "origin": "http://127.0.0.1"}
    protocol.http_headers = parsed
    protocol.request = SimpleNamespace(path="/ws/threads/7/", headers=parsed)
    protocol.http_request_data = b"GET /ws/threads/7/ HTTP/1.1\r\nCookie: sessionid=abc\r\n\r\n"
    protocol.http_response_data = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    scope_headers = protocol.clean_headers = [(b"cookie", b"sessionid=abc")]
    protocol.onOpen()
    assert logged == [
        ("websocket", "connected", {"path": "/ws/threads/7/", "client": "127.0.0.1:50000"})
    ]
    assert protocol.http_request_data is None and protocol.http_response_data is None
    assert parsed == {} and scope_headers == []


@pytest.mark.django_db(transaction=True)
async def test_an_idle_socket_keeps_no_task_besides_its_own_and_still_hears_both_sides(
    make_thread, user, other_user, cookie_of
):
    thread = await sync_to_async(make_thread)(user)
    await ThreadShare.objects.acreate(thread=thread, user=other_user, access=Access.READ)
    first = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await first.connect())[0]
    await first.receive_presence()
    before = asyncio.all_tasks()
    second = socket(thread.pk, ORIGIN, await cookie_of(other_user))
    assert (await second.connect())[0]
    assert "mallory" in await first.receive_presence()  # a group message reached the first
    await second.receive_presence()
    await asyncio.sleep(0.1)
    if isinstance(get_channel_layer(), LocalChannelLayer):
        # Its own application task only (Channels' loop kept two more: one per side). On Redis
        # channels_redis's own tasks come and go: ``AwaitedLayer``'s test counts its receives.
        assert len(asyncio.all_tasks() - before) == 1
    await second.send_to('{"action": "send", "message": "hi"}')  # a browser frame: handled
    assert "read-only" in (await second.receive_from(5)).lower()
    await second.disconnect()
    await first.disconnect()


def test_daphne_sockets_share_their_servers_websocket_settings(daphne_installed):
    _, ws_protocol = daphne_installed

    class Protocol(ws_protocol.WebSocketProtocol):  # its class attributes die with the test
        pass

    def server_factory(max_frame: int):
        factory = ws_protocol.WebSocketFactory(object(), server="daphne")
        factory.setProtocolOptions(allowNullOrigin=True, maxFramePayloadSize=max_frame)
        factory.protocol = Protocol
        return factory

    def connected(factory):
        protocol = factory.buildProtocol(None)
        protocol.peer = "tcp:127.0.0.1:50000"
        protocol._connectionMade()
        return protocol

    first_server, second_server = server_factory(1000), server_factory(2000)
    one, two, other = connected(first_server), connected(first_server), connected(second_server)
    assert one.maxFramePayloadSize == two.maxFramePayloadSize == 1000
    assert one.allowNullOrigin and "maxFramePayloadSize" not in one.__dict__  # one copy, shared
    assert other.maxFramePayloadSize == 2000  # another server's sockets keep their own


async def test_a_layer_that_must_be_awaited_keeps_one_receive_task_across_waits():
    layer_messages: asyncio.Queue[dict] = asyncio.Queue()
    receives = []

    class RedisLikeLayer:
        async def receive(self, channel: str) -> dict:
            receives.append(channel)
            return await layer_messages.get()

    browser = Inbox(capacity=10)
    awaited = AwaitedLayer(RedisLikeLayer(), "specific.abc!def")
    waiting = asyncio.create_task(awaited.receive_or(browser))
    await asyncio.sleep(0)
    browser.put_nowait({"type": "websocket.receive"})
    assert await asyncio.wait_for(waiting, 1) == (0, {"type": "websocket.receive"})
    layer_messages.put_nowait({"type": "turn.delta"})
    assert await asyncio.wait_for(awaited.receive_or(browser, start=1), 1) == (
        1,
        {"type": "turn.delta"},
    )
    assert receives == ["specific.abc!def"]  # the first receive served the second wait
    waiting = asyncio.create_task(awaited.receive_or(browser))
    await asyncio.sleep(0)
    waiting.cancel()  # the socket closes while idle
    await awaited.close()
    assert not browser._waiters and awaited.task.cancelled()
