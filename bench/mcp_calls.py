"""Benchmark: what an MCP tool call costs inside a turn, against calling the server directly.

A turn whose model calls the MCP tool ``echo`` 5 times (5 tool steps, the demo gateway's
``#call=echo #loop``) is timed, and the same turn calling the built-in calculator instead (same
upstream steps, no MCP). Their difference per call is what one MCP call costs inside a turn;
minus a direct SDK call to the same server, it is what Switchboard adds (argument check,
access check, audit row, card update). Medians of several turns.

    python bench/mcp_calls.py          # prints the figures (ms)

``measure() -> dict`` returns them for the bench harness.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.launch import demo_gateway_command, free_port  # noqa: E402

CALLS_PER_TURN = 5
TURNS = 5
API_KEY = "bench-mcp-key"


def _start(argv: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{argv[2]} did not start")


def _setup_django(data_dir: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    os.environ["SWITCHBOARD_DATA_DIR"] = data_dir
    os.environ.pop("SQLITE_PATH", None)
    os.environ["DJANGO_SECURE"] = "0"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DEMO_GATEWAY_ENABLED"] = "0"
    os.environ["TOOL_MAX_STEPS"] = str(CALLS_PER_TURN)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from project.startup_files import setup_django

    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


async def _direct_ms(url: str) -> list[float]:
    """One SDK session, kept open like Switchboard's pool: each call_tool, timed."""
    from mcp import Client

    timings = []
    async with Client(url) as client:
        await client.call_tool("echo", {"text": "warm-up"})
        for _ in range(CALLS_PER_TURN * TURNS):
            started = time.perf_counter()
            await client.call_tool("echo", {"text": "demo"})
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def measure() -> dict:
    gateway_port, mcp_port = free_port(), free_port()
    gateway = _start(demo_gateway_command(gateway_port, api_key=API_KEY, delay_ms=0), gateway_port)
    server = _start([sys.executable, "-m", "tests.mcp_server", "--port", str(mcp_port)], mcp_port)
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            _setup_django(data_dir)
            return _measure(f"http://127.0.0.1:{gateway_port}/v1", mcp_url)
    finally:
        for process in (gateway, server):
            process.terminate()
            process.wait(timeout=10)


def _measure(gateway_url: str, mcp_url: str) -> dict:
    from asgiref.sync import async_to_sync
    from django.contrib.auth import get_user_model

    from chat.models import McpServer, Provider, Thread, ToolDefinition, Turn
    from chat.services import tools
    from chat.services.mcp import client as mcp_client
    from chat.services.mcp import registry
    from chat.services.turns import launch
    from chat.services.turns import registry as turn_registry

    user = get_user_model().objects.create_user("bench-mcp", password="unused-password-1")
    provider = Provider(name="Bench gateway", base_url=gateway_url, is_default=True)
    provider.set_api_key(API_KEY)
    provider.save()
    server = McpServer.objects.create(name="bench", url=mcp_url)
    _, error = registry.refresh_now(server)
    if error:
        raise RuntimeError(error)
    echo = registry.add_to_library(user, server.tools.get(name="echo").pk)
    calculator = tools.BUILTINS["calculator"]
    builtin = ToolDefinition.objects.create(
        owner=user,
        name=calculator.name,
        parameters=calculator.parameters,
        builtin="calculator",
    )

    async def turns(tool: ToolDefinition) -> list[float]:
        timings = []
        for _ in range(TURNS + 1):  # the first warms up (and opens the pooled connection)
            thread = await Thread.objects.acreate(owner=user, provider=provider, model="demo-chat")
            await thread.tools.aset([tool])
            started = time.perf_counter()
            turn = await launch.start_turn(user, thread.pk, f"#call={tool.name} #loop")
            await turn_registry.wait_for(turn.pk)
            timings.append((time.perf_counter() - started) * 1000)
            done = await Turn.objects.aget(pk=turn.pk)
            calls = [c for c in done.tool_calls if c["status"] == "done"]
            if len(calls) != CALLS_PER_TURN:
                raise RuntimeError(f"expected {CALLS_PER_TURN} calls, got {done.tool_calls}")
        await mcp_client.close_all()
        return timings[1:]

    with_mcp = async_to_sync(turns)(echo)
    with_builtin = async_to_sync(turns)(builtin)
    direct = asyncio.run(_direct_ms(mcp_url))
    turn_mcp, turn_builtin = statistics.median(with_mcp), statistics.median(with_builtin)
    per_call_in_turn = (turn_mcp - turn_builtin) / CALLS_PER_TURN
    direct_call = statistics.median(direct)
    return {
        "turn_with_5_mcp_calls_ms": round(turn_mcp, 1),
        "turn_with_5_builtin_calls_ms": round(turn_builtin, 1),
        "mcp_call_in_turn_ms": round(per_call_in_turn, 2),
        "direct_sdk_call_ms": round(direct_call, 2),
        "added_per_call_ms": round(per_call_in_turn - direct_call, 2),
    }


def main() -> None:
    figures = measure()
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
