"""The gateway client's asyncio network backend (chat/upstream/network.py) against raw sockets:
what httpcore's anyio backend did, a connection reset, a server closing an idle keep-alive
connection, a body larger than the read buffer, and the JSON fallback of the SSE parser."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager

import httpx
import pytest

from chat import gc_tuning
from chat.upstream import network, responses_api
from chat.upstream.client import CUT_MESSAGE, GatewayClient, Timeouts
from chat.upstream.events import Completed, Failed, TextDelta
from chat.upstream.network import AsyncioBackend
from chat.upstream.sse import SSEMessage

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def sse(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def answer(words: list[str]) -> bytes:
    events = [{"type": "response.created", "response": {"id": "resp_1", "model": "m"}}]
    events += [{"type": "response.output_text.delta", "delta": w} for w in words]
    events.append({"type": "response.completed", "response": {"id": "resp_1"}})
    return b"".join(chunk(sse(e)) for e in events) + b"0\r\n\r\n"


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    await reader.readexactly(length)


async def answer_every_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A gateway that answers "one" to each request on a kept-alive connection."""
    while True:
        await read_request(reader)
        writer.write(SSE_HEAD + answer(["one"]))
        await writer.drain()


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A one-off HTTP server on 127.0.0.1; yields its /v1 URL and a list counting connections."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", connections
    finally:
        server.close()


async def ask(client: GatewayClient) -> list:
    stream = client.stream_responses({"model": "m", "input": "hi", "stream": True})
    async with aclosing(stream) as events:
        return [event async for event in events]


def test_the_client_reads_through_the_asyncio_backend():
    client = GatewayClient("http://127.0.0.1:9/v1", "key")
    assert isinstance(client._http._transport._pool._network_backend, AsyncioBackend)


async def test_keep_alive_connections_are_reused_and_a_closed_idle_one_is_replaced():
    closing = []

    async def handler(reader, writer):
        while True:
            await read_request(reader)
            writer.write(SSE_HEAD + answer(["one ", "two"]))
            await writer.drain()
            if closing:  # the server ends idle connections after an answer
                return

    async with raw_server(handler) as (url, connections):
        client = GatewayClient(url, "key", timeouts=Timeouts(2, 5, 30))
        first, second = await ask(client), await ask(client)
        assert len(connections) == 1  # one connection for both answers
        closing.append(True)
        await ask(client)
        await asyncio.sleep(0.1)  # the server's close reaches the idle pooled connection
        fourth = await ask(client)
        await client.aclose()
    for events in (first, second, fourth):
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two"
        assert isinstance(events[-1], Completed)
    assert len(connections) == 2  # the closed one was not used again


async def test_a_finished_answers_connection_is_kept_while_over_a_hundred_others_stream():
    # httpcore compares its keep-alive limit with every open connection: with the limit below
    # the number of running answers, each new turn had to open a new connection.
    release = asyncio.Event()

    async def handler(reader, writer):
        while True:
            await read_request(reader)
            if release.is_set():
                writer.write(SSE_HEAD + answer(["one"]))
            else:  # a long answer, still streaming
                writer.write(SSE_HEAD + chunk(sse({"type": "response.created", "response": {}})))
                await writer.drain()
                await release.wait()
                writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with raw_server(handler) as (url, connections):
        client = GatewayClient(url, "key", timeouts=Timeouts(2, 5, 30))
        streams = [client.stream_responses({"model": "m", "input": "hi"}) for _ in range(120)]
        for stream in streams:
            await anext(stream)  # each running answer holds its connection
        release.set()
        first, second = await ask(client), await ask(client)
        for stream in streams:
            await stream.aclose()
        await client.aclose()
    assert isinstance(first[-1], Completed) and isinstance(second[-1], Completed)
    assert len(connections) == 121  # the second answer reused the first one's connection


async def test_idle_connections_past_the_keep_alive_limit_are_closed_the_oldest_first():
    async with raw_server(answer_every_request) as (url, connections):
        client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=2))
        network.use_asyncio_backend(client)
        pool = client._transport._pool
        responses = [
            await client.send(client.build_request("POST", url + "/responses"), stream=True)
            for _ in range(5)
        ]
        opened = list(pool.connections)
        for response in responses:
            await response.aread()
            await response.aclose()
        kept = list(pool.connections)
        await client.aclose()
    assert len(connections) == 5
    assert kept == opened[3:]  # two idle ones stay, the last to be used


async def test_at_the_connection_limit_an_idle_connection_to_another_gateway_makes_room():
    async with (
        raw_server(answer_every_request) as (first, _),
        raw_server(answer_every_request) as (second, _),
    ):
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
        network.use_asyncio_backend(client)
        for url in (first, second):
            response = await client.post(url + "/responses")
            assert response.status_code == 200
        origins = [str(c._origin) for c in client._transport._pool.connections]
        await client.aclose()
    assert origins == [second.removesuffix("/v1")]


async def test_a_connection_reset_mid_answer_keeps_the_text_and_says_cut_off():
    async def handler(reader, writer):
        await read_request(reader)
        body = answer(["partial ", "text ", "never ", "finished"])
        writer.write(SSE_HEAD + body[: len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not a clean close

    async with raw_server(handler) as (url, _):
        client = GatewayClient(url, "key", timeouts=Timeouts(2, 5, 30))
        events = await ask(client)
        await client.aclose()
    assert any(isinstance(e, TextDelta) for e in events)
    assert isinstance(events[-1], Failed) and events[-1].message == CUT_MESSAGE


async def test_a_body_larger_than_the_read_buffer_arrives_whole():
    words = [f"word{i} " for i in range(60_000)]  # about 5 MB of events, read as it comes

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(SSE_HEAD + answer(words))
        await writer.drain()

    async with raw_server(handler) as (url, _):
        client = GatewayClient(url, "key", timeouts=Timeouts(2, 5, 60))
        stream = client.stream_responses({"model": "m", "input": "hi", "stream": True})
        received = []
        async with aclosing(stream) as events:
            async for event in events:
                received.append(event)
                if len(received) == 10:
                    await asyncio.sleep(0.3)  # a slow reader: the socket buffer fills up
        await client.aclose()
    assert "".join(e.text for e in received if isinstance(e, TextDelta)) == "".join(words)
    assert isinstance(received[-1], Completed)


async def test_a_gateway_that_answers_nothing_times_out_on_the_read_timeout():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(SSE_HEAD)
        await writer.drain()
        await asyncio.sleep(5)

    async with raw_server(handler) as (url, _):
        client = GatewayClient(url, "key", timeouts=Timeouts(2, 0.3, 30))
        events = await ask(client)
        await client.aclose()
    assert isinstance(events[-1], Failed) and events[-1].kind == "timeout"
    assert "nothing for 0.3 s" in events[-1].message


def test_sse_json_that_only_the_standard_library_accepts_still_streams():
    # A lone surrogate escape: orjson refuses it, json (and so this relay before) accepts it.
    translator = responses_api.ResponsesStreamTranslator()
    data = '{"type": "response.output_text.delta", "delta": "a\\ud800b"}'
    events = translator.feed(SSEMessage("response.output_text.delta", data))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a\ud800b"]
    broken = translator.feed(SSEMessage("response.output_text.delta", '{"type": '))
    assert isinstance(broken[0], Failed)


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_serving_freezes_the_start_up_heap_and_collects_young_objects_less_often(restored_gc):
    gc.unfreeze()
    gc_tuning.tune_for_serving()
    assert gc.get_freeze_count() > 10_000  # Django and the app, out of every full collection
    assert gc.get_threshold()[0] == gc_tuning.YOUNG_THRESHOLD


async def test_a_request_on_a_kept_alive_connection_is_written_before_other_ready_work_runs(
    monkeypatch,
):
    # On a busy worker every yield before the write costs the new turn one pass over all the
    # other streams' work: the request must go out in the same step as the send.
    passes = 0

    async def other_work():
        nonlocal passes
        while True:
            passes += 1
            await asyncio.sleep(0)

    written_at = []
    real_write = network.AsyncioStream.write

    async def write(self, buffer, timeout=None):  # noqa: ASYNC109 (httpcore's interface)
        written_at.append(passes)
        await real_write(self, buffer, timeout)

    monkeypatch.setattr(network.AsyncioStream, "write", write)
    async with raw_server(answer_every_request) as (url, _):
        client = GatewayClient(url, "key", timeouts=Timeouts(2, 5, 30))
        await ask(client)  # the connection is open and back in the pool
        counter = asyncio.create_task(other_work())
        await asyncio.sleep(0.01)
        written_at.clear()
        sent_at = passes
        events = await ask(client)
        counter.cancel()
        await client.aclose()
    assert isinstance(events[-1], Completed)
    assert written_at[0] == sent_at
