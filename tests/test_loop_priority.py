"""What a new turn waits on runs ahead of the relay's queued work (chat.loop_priority): the
browser's message reaching its consumer, the runner's first step, the gateway's first bytes."""

import asyncio

from chat import loop_priority
from chat.socket_loop import BrowserInbox
from chat.upstream import network


async def test_what_the_block_schedules_runs_before_what_was_queued_in_its_order():
    loop = asyncio.get_running_loop()
    order = []
    loop.call_soon(order.append, "queued 1")
    loop.call_soon(order.append, "queued 2")
    with loop_priority.ahead_of_queued_work():
        loop.call_soon(order.append, "urgent 1")
        loop.call_soon(order.append, "urgent 2")
    loop.call_soon(order.append, "later")
    await asyncio.sleep(0.01)
    assert order == ["urgent 1", "urgent 2", "queued 1", "queued 2", "later"]


async def test_a_new_task_takes_its_first_step_before_queued_work():
    order = []
    asyncio.get_running_loop().call_soon(order.append, "queued")

    async def first_step():
        order.append("task")

    with loop_priority.ahead_of_queued_work():
        task = asyncio.create_task(first_step())
    await task
    assert order == ["task", "queued"]


def test_on_a_loop_without_a_ready_queue_the_block_just_runs():
    ran = []
    with loop_priority.ahead_of_queued_work(object()):  # uvloop keeps its queue in C
        ran.append(1)
    assert ran == [1]


async def test_a_browsers_message_wakes_its_consumer_before_queued_work():
    loop = asyncio.get_running_loop()
    order = []
    inbox = BrowserInbox(100)

    async def consumer():
        await inbox.get()
        order.append("consumer")

    task = asyncio.create_task(consumer())
    await asyncio.sleep(0)  # waiting for the browser
    loop.call_soon(order.append, "queued")
    inbox.put_nowait((0.0, {"type": "websocket.receive"}))
    await task
    await asyncio.sleep(0)
    assert order == ["consumer", "queued"]


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False


async def test_after_a_request_the_first_reads_of_its_answer_wake_before_queued_work():
    loop = asyncio.get_running_loop()
    protocol = network._StreamProtocol(loop)
    stream = network.AsyncioStream(_Transport(), protocol)
    order = []

    async def reader():
        while True:
            data = await stream.read(100)
            order.append(f"read {data.decode()}")

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    await stream.write(b"POST /v1/responses ...")
    for part in ("headers", "first event", "second event"):
        loop.call_soon(order.append, f"queued before the {part}")
        protocol.data_received(part.encode())
        await asyncio.sleep(0.001)
    task.cancel()
    assert order == [
        "read headers",
        "queued before the headers",
        "read first event",
        "queued before the first event",
        # the stream's later reads keep their place among the other streams' work
        "queued before the second event",
        "read second event",
    ]
