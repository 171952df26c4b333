"""Real MCP server processes (tests/mcp_server) for the tests, and their registration."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chat.models import McpServer, ToolDefinition
from chat.services.mcp import registry
from devtools.launch import free_port
from tests.gateway_fixtures import stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token-value"


def start_server(*args: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """``python -m tests.mcp_server`` on ``port`` (else a free one); returns (process, URL) once
    it listens."""
    port = port or free_port()
    transport = "sse" if "sse" in args else "streamable-http"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp_server", "--port", str(port), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            path = "/sse" if transport == "sse" else "/mcp"
            return process, f"http://127.0.0.1:{port}{path}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("the test MCP server did not start", pytrace=False)


def stop(process: subprocess.Popen) -> None:
    stop_process(process, timeout=5)


@pytest.fixture(scope="session")
def mcp_url() -> Iterator[str]:
    """A Streamable-HTTP server whose ``secret`` tool wants ``X-Test-Token: TOKEN``."""
    process, url = start_server("--token", TOKEN, "--name", "main-tools")
    yield url
    stop(process)


@pytest.fixture(scope="session")
def second_mcp_url() -> Iterator[str]:
    process, url = start_server("--name", "second-tools")
    yield url
    stop(process)


@pytest.fixture
def make_mcp_server(db) -> Callable[..., McpServer]:
    def make(url: str, name: str = "tools", *, teams=(), headers=None, **fields) -> McpServer:
        server = McpServer(name=name, url=url, **fields)
        server.set_headers(headers or {})
        server.save()
        server.teams.set(teams)
        _, error = registry.refresh_now(server)
        assert error == "", error
        return server

    return make


def offer(user, thread, server: McpServer, *names: str) -> list[ToolDefinition]:
    """Add the server's tools to the user's library and to the thread."""
    added = [registry.add_to_library(user, server.tools.get(name=name).pk) for name in names]
    thread.tools.add(*added)
    return added
