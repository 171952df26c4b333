"""The plain-HTTP fast lane for streamed answers: framing, keep-alive, failures as httpx's.

The demo gateway tests (test_demo_gateway.py) already stream every kind of answer and fault
through it; these drive a scripted server for what a well-behaved gateway never does."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import random
import zlib

import httpx
import pytest

from chat.upstream.client import CUT_MESSAGE, GatewayClient, Timeouts
from chat.upstream.events import Completed, Failed, TextDelta
from chat.upstream.fastlane import FastLane, _Chunked


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
    return body + b"0\r\n" + trailer + b"\r\n"


def sse(*texts: str, done: bool = True) -> list[bytes]:
    events = [
        "event: response.created\ndata: "
        + json.dumps({"type": "response.created", "response": {"id": "r1", "model": "m"}})
    ]
    events += [
        "event: response.output_text.delta\ndata: "
        + json.dumps({"type": "response.output_text.delta", "delta": text})
        for text in texts
    ]
    if done:
        events.append(
            "event: response.completed\ndata: "
            + json.dumps({"type": "response.completed", "response": {"id": "r1"}})
        )
    return [(event + "\n\n").encode() for event in events]


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


class Scripted:
    """A TCP server answering each request on a connection with the next scripted reply:
    bytes to send (a list: sent with pauses in between), optionally closing afterwards."""

    def __init__(self, replies: list) -> None:
        self.replies = list(replies)
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                parts, close = (reply[0], True) if isinstance(reply, tuple) else (reply, False)
                for part in parts if isinstance(parts, list) else [parts]:
                    if part is None:
                        await asyncio.sleep(3600)  # go silent
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0.01)
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def collect(client: GatewayClient, text: str = "hi") -> list:
    body = {"model": "m", "input": text, "stream": True}
    return [event async for event in client.stream_responses(body)]


def test_chunked_decoding_survives_any_split():
    pieces = [b"a" * n for n in (1, 7, 300, 5000)] + [b"\r\n", b"0\r\n"]
    wire = chunked(*pieces, trailer=b"x-trailer: 1\r\n")
    rng = random.Random(3)
    for _ in range(200):
        decoder, buffer, out, done = _Chunked(), bytearray(), [], False
        position = 0
        while not done:
            step = rng.randint(1, 40)
            buffer += wire[position : position + step]
            position += step
            while True:
                data, done = decoder.take(buffer, False)
                out.append(data)
                if done or not data:
                    break
        assert b"".join(out) == b"".join(pieces)
        assert position >= len(wire) and not buffer


async def test_streams_are_read_through_the_fast_lane_and_connections_are_reused():
    reply = [HEAD] + [chunked(event)[:-5] for event in sse("Hel", "lo")] + [b"0\r\n\r\n"]
    async with Scripted([reply, reply]) as server:
        client = GatewayClient(server.url, "key")
        assert client._fast is not None
        first, second = await collect(client), await collect(client)
        await client.aclose()
    for events in (first, second):
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello"
        assert isinstance(events[-1], Completed)
    assert server.connections == 1  # kept alive and reused
    request = server.requests[0]
    assert request.startswith(b"POST /v1/responses HTTP/1.1\r\n")
    assert b"authorization: Bearer key\r\n" in request and b"accept: text/event-stream" in request
    assert json.loads(request.split(b"\r\n\r\n", 1)[1]) == {
        "model": "m",
        "input": "hi",
        "stream": True,
    }


async def test_https_proxies_and_custom_transports_keep_using_httpx(monkeypatch):
    assert GatewayClient("https://gateway.example/v1", "k")._fast is None
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    assert GatewayClient("http://gateway.example/v1", "k", transport=mock)._fast is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert GatewayClient("http://gateway.example/v1", "k")._fast is None
    monkeypatch.setenv("NO_PROXY", "gateway.example")
    assert GatewayClient("http://gateway.example/v1", "k")._fast is not None


@pytest.mark.parametrize("framing", ["length", "close", "gzip", "deflate", "interim"])
async def test_other_framings_and_encodings(framing):
    body = b"".join(sse("a", "b"))
    headers = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    if framing == "length":
        reply = headers + b"content-length: %d\r\n\r\n" % len(body) + body
    elif framing == "close":
        reply = (headers + b"\r\n" + body, True)
    elif framing == "interim":
        reply = b"HTTP/1.1 100 Continue\r\n\r\n" + HEAD + chunked(body)
    else:
        packed = gzip.compress(body) if framing == "gzip" else zlib.compress(body)
        reply = headers + b"content-encoding: %s\r\n" % framing.encode()
        reply += b"transfer-encoding: chunked\r\n\r\n" + chunked(packed[:10], packed[10:])
    async with Scripted([reply]) as server:
        client = GatewayClient(server.url, "key")
        events = await collect(client)
        await client.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b"]
    assert isinstance(events[-1], Completed)


async def test_a_stream_cut_mid_body_is_reported_and_not_reused():
    cut = [HEAD, chunked(*sse("a", done=False))[:-5], b"40\r\npartial"]
    whole = [HEAD, chunked(*sse("b"))]
    async with Scripted([(cut, True), whole]) as server:
        client = GatewayClient(server.url, "key")
        events = await collect(client)
        again = await collect(client)
        await client.aclose()
    assert events[-1] == Failed(CUT_MESSAGE, "protocol")
    assert isinstance(again[-1], Completed)
    assert server.connections == 2


async def test_http_errors_read_the_gateways_message():
    error = json.dumps({"error": {"message": "slow down", "code": "rate"}}).encode()
    reply = b"HTTP/1.1 429 Too Many\r\ncontent-type: application/json\r\n"
    reply += b"content-length: %d\r\n\r\n" % len(error) + error
    async with Scripted([reply]) as server:
        client = GatewayClient(server.url, "key")
        events = await collect(client)
        await client.aclose()
    assert events == [Failed(events[0].message, "http", status_code=429, code="rate")]
    assert "slow down" in events[0].message


async def test_silence_is_a_read_timeout_and_the_next_request_works():
    silent = [HEAD, chunked(*sse("a", done=False))[:-5], None]
    async with Scripted([silent, [HEAD, chunked(*sse("b"))]]) as server:
        client = GatewayClient(server.url, "key", timeouts=Timeouts(read=0.3))
        events = await collect(client)
        again = await collect(client)
        await client.aclose()
    assert events[-1].kind == "timeout" and "stopped responding" in events[-1].message
    assert isinstance(again[-1], Completed)


async def test_the_connection_limit_waits_then_gives_up():
    async with Scripted([[HEAD, None]]) as server:
        lane = FastLane(
            server.url, httpx.Headers(), connect_timeout=0.2, read_timeout=5, max_connections=1
        )
        response = await lane.post("responses", {}, {}, 5)
        with pytest.raises(httpx.PoolTimeout):
            await lane.post("responses", {}, {}, 5)
        await response.aclose()
        await lane.aclose()


async def test_garbage_instead_of_http_is_a_protocol_error():
    async with Scripted([(b"SSH-2.0-OpenSSH\r\n\r\n", True)]) as server:
        lane = FastLane(server.url, httpx.Headers(), connect_timeout=1, read_timeout=1)
        with pytest.raises(httpx.RemoteProtocolError):
            await lane.post("responses", {}, {}, 1)
        await lane.aclose()


async def test_cancelling_a_stream_closes_its_connection():
    async with Scripted([[HEAD, chunked(*sse("a", done=False))[:-5], None]]) as server:
        client = GatewayClient(server.url, "key")
        seen = asyncio.Event()

        async def read() -> None:
            async for event in client.stream_responses({"model": "m", "input": "x"}):
                if isinstance(event, TextDelta):
                    seen.set()

        task = asyncio.create_task(read())
        await asyncio.wait_for(seen.wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert client._fast._idle == [] and client._fast._active == 0
        await client.aclose()
