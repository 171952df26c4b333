"""The gateway stream one network read at a time (``stream_responses_batches``, chat/upstream/
eager.py): what arrived while the consumer was away comes in one batch, in order; a consumer
that stops or is cancelled between two reads closes the connection; a failure after buffered
events loses none of them."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from chat.upstream import eager
from chat.upstream.client import CUT_MESSAGE, GatewayClient
from chat.upstream.events import Completed, Failed, Started, TextDelta
from tests.test_upstream_network import SSE_HEAD, chunk, raw_server, read_request, sse

BODY = {"model": "m", "input": "hi", "stream": True}
CREATED = {"type": "response.created", "response": {"id": "resp_1", "model": "m"}}
COMPLETED = {"type": "response.completed", "response": {"id": "resp_1"}}


def delta(word: str) -> bytes:
    return chunk(sse({"type": "response.output_text.delta", "delta": word}))


def texts(batch: list) -> list[str]:
    return [event.text for event in batch if isinstance(event, TextDelta)]



async def read_batches(handler, *, pause: float) -> list[list]:
    """The client's batches from ``handler``'s gateway, read by a consumer that pauses
    ``pause`` seconds after each batch."""
    async with raw_server(handler) as (url, _):
        client = GatewayClient(url, "key")
        batches = []
        async with aclosing(client.stream_responses_batches(BODY)) as stream:
            async for batch in stream:
                batches.append(batch)
                await asyncio.sleep(pause)
        await client.aclose()
    return batches

async def test_what_arrived_while_the_consumer_was_away_comes_in_one_batch_in_order():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(SSE_HEAD + chunk(sse(CREATED)) + delta("a "))
        await writer.drain()
        for word in ("b ", "c ", "d "):  # separate packets, while the consumer sleeps
            await asyncio.sleep(0.02)
            writer.write(delta(word))
            await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(chunk(sse(COMPLETED)) + b"0\r\n\r\n")
        await writer.drain()

    batches = await read_batches(handler, pause=0.15)  # a consumer reading once per window
    assert isinstance(batches[0][0], Started) and texts(batches[0]) == ["a "]
    assert texts(batches[1]) == ["b ", "c ", "d "]
    assert batches[-1] == [Completed("resp_1")]


async def _stopped_between_reads(stop) -> tuple[list, bool]:
    """A stream whose consumer stops (``stop``) while a read waits for the gateway; the
    events seen, and whether the gateway saw its connection closed."""
    closed = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(SSE_HEAD + chunk(sse(CREATED)) + delta("a "))
        await writer.drain()
        await reader.read()  # until the client closes the connection
        closed.set()

    async with raw_server(handler) as (url, _):
        client = GatewayClient(url, "key")
        seen: list = []
        await stop(client, seen)
        await asyncio.wait_for(closed.wait(), 5)
        assert client._in_flight == 0
        await client.aclose()
    return seen, closed.is_set()


async def test_a_consumer_that_stops_between_reads_closes_the_connection():
    async def stop(client, seen):
        async with aclosing(client.stream_responses_batches(BODY)) as stream:
            seen.extend(await anext(stream))
            await asyncio.sleep(0.05)  # the next read is started and waits

    seen, closed = await _stopped_between_reads(stop)
    assert texts(seen) == ["a "] and closed


async def test_a_turn_cancelled_while_it_sleeps_between_reads_closes_the_connection():
    async def stop(client, seen):
        async def consume():
            async with aclosing(client.stream_responses_batches(BODY)) as stream:
                async for batch in stream:
                    seen.extend(batch)
                    await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()

    seen, closed = await _stopped_between_reads(stop)
    assert texts(seen) == ["a "] and closed


async def test_a_connection_cut_after_buffered_events_keeps_them_then_says_so():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(SSE_HEAD + chunk(sse(CREATED)) + delta("a ") + delta("b "))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(delta("c "))
        await writer.drain()
        writer.transport.abort()  # no final chunk: the answer was cut

    events = [event for batch in await read_batches(handler, pause=0.1) for event in batch]
    assert texts(events) == ["a ", "b ", "c "]
    assert events[-1] == Failed(CUT_MESSAGE, "protocol")


async def test_a_started_awaitable_finishes_in_whoever_awaits_it():
    async def ready() -> int:
        return 1

    async def later(gate: asyncio.Event) -> str:
        await gate.wait()
        return "done"

    now = eager.start(ready())
    assert now.done and now.result() == 1 and await now == 1
    gate = asyncio.Event()
    waiting = eager.start(later(gate))
    assert not waiting.done
    asyncio.get_running_loop().call_later(0.01, gate.set)
    assert await waiting == "done"


async def test_an_abandoned_started_awaitable_runs_its_clean_up():
    cleaned = []

    async def read() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(True)

    started = eager.start(read())
    await started.abandon()
    assert cleaned == [True]
