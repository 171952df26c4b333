"""An asyncio-native network backend for httpcore (under the gateway's ``httpx.AsyncClient``).

Why: httpcore's default backend on asyncio goes through anyio, which opens a cancel scope
(``anyio.fail_after``, a few ``current_task``/sniffio look-ups) around *every* socket read. A
streamed answer is one small read per SSE event, so on the relay's profile that wrapper cost
more than parsing the event. Here a read is a buffer check, or one future with one timer
(the read timeout) when no data is waiting. Behaviour is httpcore's contract: the same
exceptions (``ReadTimeout``, ``ReadError``, ``ConnectError``…), EOF as ``b""``, TLS through
``loop.start_tls``, ``is_readable`` for pooled keep-alive connections.

Also here: httpcore's connection locks take the lock without yielding when no one holds it
(``_fast_connection_locks``), and its pool applies the keep-alive limit to the idle
connections (``_assign_requests_to_connections``).
"""

# httpcore's interface passes ``timeout`` to every call: ASYNC109 does not apply.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx
from httpcore._synchronization import AsyncLock
from httpcore._utils import is_socket_readable

from chat import loop_priority

__all__ = ["AsyncioBackend", "use_asyncio_backend"]

# Reading from the socket pauses while this much is buffered and unread (a slow consumer).
_HIGH_WATER = 256 * 1024
# After a request is written, this many wake-ups of its reader run ahead of queued work
# (chat.loop_priority): the response's headers and its first event.
URGENT_WAKES_AFTER_WRITE = 2


def _expire(waiter: asyncio.Future[None], error: type[Exception]) -> None:
    if not waiter.done():
        waiter.set_exception(error())


class _StreamProtocol(asyncio.Protocol):
    """Buffers what the socket receives until httpcore reads it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.writing_paused = False
        # A request was just written: the reader of its response's first bytes (the headers,
        # then the first event when they come apart) is woken ahead of queued work.
        self.urgent_wakes = 0

    # -- asyncio's callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake_reader()
        if len(self.buffer) > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self.writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake_reader(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            if self.urgent_wakes:
                self.urgent_wakes -= 1
                with loop_priority.ahead_of_queued_work(self.loop):
                    self._read_waiter.set_result(None)
            else:
                self._read_waiter.set_result(None)

    # -- what the stream awaits -------------------------------------------------------------

    async def wait_readable(self, timeout: float | None) -> None:
        self._read_waiter = waiter = self.loop.create_future()
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, _expire, waiter, httpcore.ReadTimeout)
        try:
            await waiter
        finally:
            self._read_waiter = None
            if timer is not None:
                timer.cancel()

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) < _HIGH_WATER // 4 and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def drain(self, timeout: float | None) -> None:
        self._drain_waiter = waiter = self.loop.create_future()
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, _expire, waiter, httpcore.WriteTimeout)
        try:
            await waiter
        finally:
            self._drain_waiter = None
            if timer is not None:
                timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            await protocol.wait_readable(timeout)
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        self._protocol.urgent_wakes = URGENT_WAKES_AFTER_WRITE
        if self._protocol.writing_paused:
            await self._protocol.drain(timeout)
            if self._transport.is_closing() and self._protocol.error is not None:
                raise httpcore.WriteError(str(self._protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = self._protocol.loop
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport  # type: ignore[assignment]
        return AsyncioStream(transport, self._protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # The protocol reads eagerly: what the server sent (or its close) is buffered here.
            protocol = self._protocol
            sock = transport.get_extra_info("socket")
            return bool(protocol.buffer) or protocol.eof or is_socket_readable(sock)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        return await self._connect(
            loop.create_connection(lambda: _StreamProtocol(loop), host, port, local_addr=local),
            timeout,
            socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await self._connect(
            loop.create_unix_connection(lambda: _StreamProtocol(loop), path),
            timeout,
            socket_options,
        )

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    @staticmethod
    async def _connect(
        connecting: Any, timeout: float | None, socket_options: Iterable[Any] | None
    ) -> AsyncioStream:
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await connecting
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)


def _fast_connection_locks() -> None:
    """httpcore takes two locks per request on a pooled connection (the connection's and its
    HTTP/1.1 state's), each an ``anyio.Lock`` that yields to the event loop once it is taken
    even when no one else held it. On a busy loop each yield waits for one pass over every
    other ready task (3 to 4 ms at 100 streams): two passes before a new turn's request was
    written. anyio's ``fast_acquire`` takes a free lock at once (a held one is still waited
    for, in order); a cancelled task is still stopped there."""

    def setup(self: AsyncLock) -> None:
        original_setup(self)
        if self._backend == "asyncio":
            self._anyio_lock = anyio.Lock(fast_acquire=True)

    original_setup = AsyncLock.setup
    AsyncLock.setup = setup  # type: ignore[method-assign]


_fast_connection_locks()


def _assign_requests_to_connections(
    self: httpcore.AsyncConnectionPool,
) -> list[httpcore.AsyncConnectionInterface]:
    """httpcore 1.0.9's method (``pyproject.toml`` keeps httpcore at 1.0.x), with the keep-alive
    limit applied to the idle connections.

    httpcore counts *every* connection of the pool against ``max_keepalive_connections``
    (encode/httpcore#1000), once per idle connection: with more answers streaming than the
    limit, each finished turn's connection was closed and every new turn opened one (four
    loop passes, 12 ms of its first token at 100 streams); with a higher limit, each request
    and release cost connections × idle connections. Here the idle ones are counted once."""
    closing_connections = []
    idle_count = sum(1 for connection in self._connections if connection.is_idle())
    for connection in list(self._connections):
        if connection.is_closed():
            self._connections.remove(connection)
        elif connection.has_expired():
            self._connections.remove(connection)
            closing_connections.append(connection)
            idle_count -= connection.is_idle()
        elif connection.is_idle() and idle_count > self._max_keepalive_connections:
            self._connections.remove(connection)  # the oldest idle ones first, as httpcore
            closing_connections.append(connection)
            idle_count -= 1

    # Assign queued requests to connections (as httpcore does).
    queued_requests = [request for request in self._requests if request.is_queued()]
    for pool_request in queued_requests:
        origin = pool_request.request.url.origin
        available_connections = [
            connection
            for connection in self._connections
            if connection.can_handle_request(origin) and connection.is_available()
        ]
        if available_connections:
            connection = available_connections[0]
            pool_request.assign_to_connection(connection)
        elif len(self._connections) < self._max_connections:
            connection = self.create_connection(origin)
            self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        elif (idle := next((c for c in self._connections if c.is_idle()), None)) is not None:
            # Only looked for at the connection limit (httpcore lists them for every request).
            self._connections.remove(idle)
            closing_connections.append(idle)
            connection = self.create_connection(origin)
            self._connections.append(connection)
            pool_request.assign_to_connection(connection)

    return closing_connections


httpcore.AsyncConnectionPool._assign_requests_to_connections = _assign_requests_to_connections  # type: ignore[method-assign]


def use_asyncio_backend(client: httpx.AsyncClient) -> None:
    """Make every connection pool of ``client`` (its default transport and any proxy mounts
    taken from the environment) use :class:`AsyncioBackend`. A transport that is not httpx's
    own (tests' mock transports) is left as it is."""
    backend = AsyncioBackend()
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.AsyncConnectionPool):
            pool._network_backend = backend
