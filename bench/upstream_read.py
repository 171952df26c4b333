"""CPU per chunk of the upstream read alone (chat.upstream's client, no Django, no sockets to
browsers): N streams from the demo gateway, read the two ways the relay could.

- ``per-event``: one event per async step, a flush task woken per coalescing window (how the
  runner read before issue 20);
- ``paced``: one batch per step, the next read once the window has passed (``TurnRunner._pace``).

    .venv/bin/python bench/upstream_read.py --streams 50 --chunks 300

Prints this process's CPU time per text chunk for each way; the machine's other load shows up as
noise, so compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.upstream.client import GatewayClient  # noqa: E402
from chat.upstream.events import TextDelta  # noqa: E402
from devtools.launch import demo_gateway_command, free_port  # noqa: E402

WINDOW = 0.04  # STREAM_COALESCE_SECONDS' default


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_event(client: GatewayClient, body: dict) -> int:
    dirty, count = asyncio.Event(), 0

    async def flush() -> None:
        while True:
            await dirty.wait()
            dirty.clear()
            await asyncio.sleep(WINDOW)

    flusher = asyncio.create_task(flush())
    async for event in client.stream_responses(body):
        if type(event) is TextDelta:
            count += 1
            dirty.set()
    flusher.cancel()
    return count


async def paced(client: GatewayClient, body: dict) -> int:
    count, next_window = 0, 0.0
    async for batch in client.stream_responses_batches(body):
        texts = sum(type(event) is TextDelta for event in batch)
        count += texts
        if texts:
            next_window = time.monotonic() + WINDOW
        delay = next_window - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return count


async def measure_way(url: str, way, streams: int, chunks: int) -> float:
    client = GatewayClient(url, "bench")
    body = {"model": "demo-chat", "input": f"#chunks={chunks} #delay=20 go", "stream": True}
    await way(client, body)  # warm: connections, imports
    before = cpu_seconds()
    tasks = []
    for _ in range(streams):
        tasks.append(asyncio.create_task(way(client, body)))
        await asyncio.sleep(0.002)  # the bench's ramp
    relayed = sum(await asyncio.gather(*tasks))
    await client.aclose()
    return (cpu_seconds() - before) / relayed * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    command = demo_gateway_command(port, api_key="bench", delay_ms=20)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    gateway = subprocess.Popen(command, cwd=ROOT, **quiet)
    try:
        time.sleep(2)  # the gateway's start-up
        url = f"http://127.0.0.1:{port}/v1"
        for _ in range(args.repeat):
            for way in (per_event, paced):
                us = asyncio.run(measure_way(url, way, args.streams, args.chunks))
                print(f"{way.__name__:>9}: {us:6.1f} µs CPU per chunk ({args.streams} streams)")
    finally:
        gateway.terminate()
        gateway.wait(10)


if __name__ == "__main__":
    main()
