"""Connections to MCP servers with the official SDK: one session per server and per worker, kept
open and reused, reopened after a failure. No Django here (the registry feeds it plain configs).

The SDK's sessions are anyio task groups: they must be left in the task that entered them. So
each connection is held open by a task of its own (``_hold``); calls from any turn's task go
through the session it publishes, and many calls share it at once. Everything is awaited on
the event loop with timeouts: a slow or dead server only delays the calls made to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

log = logging.getLogger(__name__)

# A listing is paged by the server; a bound keeps a misbehaving one from looping forever.
MAX_TOOL_PAGES = 20
# The response of a call may stream for as long as the call runs; reads wait at least this.
MIN_READ_SECONDS = 300.0


@dataclass(frozen=True)
class ServerConfig:
    """What a connection is opened with. A changed config (URL, headers…) opens a new one."""

    server_id: int
    name: str
    url: str
    transport: str  # "streamable_http" | "sse"
    headers: tuple[tuple[str, str], ...] = ()
    connect_timeout: float = 10.0
    call_timeout: float = 60.0


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]


class McpUnavailable(Exception):
    """The server could not be reached or did not answer in time (the text says which)."""


ToolsChanged = Callable[[ServerConfig], Awaitable[None]]


def _describe(error: BaseException) -> str:
    """A short human sentence for a connection failure (the SDK nests them in groups)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, httpx2.HTTPStatusError):
        return f"the server answered HTTP {error.response.status_code}"
    if isinstance(error, httpx2.ConnectError | ConnectionError | OSError):
        return "the server cannot be reached"
    if isinstance(error, TimeoutError | httpx2.TimeoutException):
        return "the server did not answer in time"
    if isinstance(error, MCPError):
        return f"the server refused: {error.error.message}"
    return f"{type(error).__name__}: {error}"[:300]


class Connection:
    """One open session with one server."""

    def __init__(self, config: ServerConfig, on_tools_changed: ToolsChanged | None = None) -> None:
        self.config = config
        self._on_tools_changed = on_tools_changed
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._close = asyncio.Event()
        self._error: BaseException | None = None
        self._lock = asyncio.Lock()

    # -- opening and closing ------------------------------------------------------------------

    async def client(self) -> Client:
        """The open session, opening it (again) when there is none."""
        async with self._lock:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            await self._stop_holder()
            self._ready, self._close, self._error = asyncio.Event(), asyncio.Event(), None
            self._holder = asyncio.create_task(self._hold(), name=f"mcp-{self.config.name}")
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    await self._ready.wait()
            except TimeoutError:
                await self._stop_holder()
                raise McpUnavailable(
                    f"could not connect within {self.config.connect_timeout:g} s"
                ) from None
            if self._client is None:
                raise McpUnavailable(_describe(self._error or RuntimeError("closed")))
            return self._client

    def _transport(self) -> Any:
        config = self.config
        headers = dict(config.headers)
        timeout = httpx2.Timeout(
            config.connect_timeout, read=max(MIN_READ_SECONDS, config.call_timeout)
        )
        if config.transport == "sse":
            return sse_client(
                config.url,
                headers=headers,
                timeout=config.connect_timeout,
                sse_read_timeout=max(MIN_READ_SECONDS, config.call_timeout),
            )
        http = httpx2.AsyncClient(headers=headers, timeout=timeout)
        return _owning(streamable_http_client(config.url, http_client=http), http)

    async def _hold(self) -> None:
        try:
            async with Client(
                self._transport(),
                message_handler=self._on_message,
                cache=None,  # tools/list must always ask the server
            ) as client:
                self._client = client
                await self._listen(client)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # reported to the callers, never raised here
            self._error = error
            log.info("MCP server %s: connection ended: %s", self.config.name, _describe(error))
        finally:
            self._client = None
            self._ready.set()

    async def _listen(self, client: Client) -> None:
        """Publish the session, then wait until closed. On 2026 servers, also hear their
        tools/list_changed events: subscribed before any call goes out, so a call that changes
        the list cannot beat the subscription (older servers send the events unasked, to
        ``_on_message``)."""
        if self._on_tools_changed is None:
            self._ready.set()
            await self._close.wait()
            return
        try:
            async with client.listen(tools_list_changed=True) as events:
                self._ready.set()
                waiter = asyncio.ensure_future(self._close.wait())
                try:
                    async for _event in _until(events, waiter):
                        self._tools_changed()
                finally:
                    waiter.cancel()
        except (ListenNotSupportedError, MCPError):
            self._ready.set()
            await self._close.wait()

    async def _on_message(self, message: Any) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/tools/list_changed":
            self._tools_changed()

    def _tools_changed(self) -> None:
        if self._on_tools_changed is None:
            return
        # Not awaited here: the refresh lists tools over this same session.
        _in_background(self._on_tools_changed(self.config))

    async def _stop_holder(self) -> None:
        holder, self._holder, self._client = self._holder, None, None
        if holder is None or holder.done():
            return
        self._close.set()
        try:
            async with asyncio.timeout(2):
                await asyncio.shield(holder)
        except (TimeoutError, Exception):
            holder.cancel()
            with contextlib.suppress(BaseException):
                await holder

    async def close(self) -> None:
        async with self._lock:
            await self._stop_holder()

    async def broken(self) -> None:
        """A call failed below the protocol: the next call opens a fresh session."""
        await self.close()

    # -- what the callers use -----------------------------------------------------------------

    async def list_tools(self) -> list[ToolInfo]:
        client = await self.client()
        found: list[ToolInfo] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                for _ in range(MAX_TOOL_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    found.extend(
                        ToolInfo(tool.name, tool.description or "", dict(tool.input_schema))
                        for tool in page.tools
                    )
                    cursor = page.next_cursor
                    if not cursor:
                        break
        except MCPError as error:
            raise McpUnavailable(_describe(error)) from error
        except Exception as error:
            await self.broken()
            raise McpUnavailable(_describe(error)) from error
        return found

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Raises ``McpUnavailable`` (no session), ``TimeoutError`` (over the call timeout),
        ``MCPError`` (a protocol error: unknown tool, bad arguments…)."""
        client = await self.client()
        try:
            async with asyncio.timeout(self.config.call_timeout):
                return await client.call_tool(name, arguments)
        except (MCPError, TimeoutError, asyncio.CancelledError):
            raise
        except Exception as error:
            await self.broken()
            raise McpUnavailable(_describe(error)) from error


async def _until(events: Any, stop: asyncio.Future) -> Any:
    """The events of a listen stream until ``stop`` is done."""
    iterator = events.__aiter__()
    while True:
        following = asyncio.ensure_future(iterator.__anext__())
        done, _ = await asyncio.wait({following, stop}, return_when=asyncio.FIRST_COMPLETED)
        if following not in done:
            following.cancel()
            with contextlib.suppress(BaseException):
                await following
            return
        try:
            yield following.result()
        except StopAsyncIteration:
            return


@contextlib.asynccontextmanager
async def _owning(transport: Any, http: httpx2.AsyncClient) -> Any:
    """The streamable-HTTP transport with our configured HTTP client, closed with it."""
    async with http, transport as streams:
        yield streams


_background: set[asyncio.Task] = set()


def _in_background(work: Awaitable[None]) -> None:
    """Run ``work`` without waiting for it; kept referenced until done, failures logged."""
    task = asyncio.ensure_future(work)
    _background.add(task)

    def done(task: asyncio.Task) -> None:
        _background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("MCP background work failed", exc_info=task.exception())

    task.add_done_callback(done)


# Per event loop (a worker has one; tests make many), per server: the open connections.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Connection]] = (
    weakref.WeakKeyDictionary()
)


def connection_for(
    config: ServerConfig, on_tools_changed: ToolsChanged | None = None
) -> Connection:
    """This worker's connection to the server, a new one when its settings changed."""
    pool = _pools.setdefault(asyncio.get_running_loop(), {})
    current = pool.get(config.server_id)
    if current is not None and current.config == config:
        return current
    if current is not None:
        _in_background(current.close())
    pool[config.server_id] = connection = Connection(config, on_tools_changed)
    return connection


async def close_all() -> None:
    """Close this loop's connections (tests, shutdown)."""
    pool = _pools.pop(asyncio.get_running_loop(), {})
    await asyncio.gather(*(c.close() for c in pool.values()), return_exceptions=True)


async def list_once(config: ServerConfig) -> list[ToolInfo]:
    """List the tools over a connection of its own, closed after (admin and library views)."""
    connection = Connection(config)
    try:
        return await connection.list_tools()
    finally:
        await connection.close()
