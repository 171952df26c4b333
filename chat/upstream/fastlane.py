"""Streamed POSTs to a plain-HTTP gateway over Switchboard's own HTTP/1.1 connections.

Relaying an answer is mostly reading small SSE chunks, one every few tens of milliseconds per
stream. Through httpx each chunk climbs about ten nested async generators and context managers
(httpx, httpcore, h11, AnyIO), which cost about three times the parsing of the chunk itself
(~110 µs against ~35 µs per chunk, measured on the benchmark's gateway). This module reads the
response on an asyncio protocol and decodes its framing (chunked, length, or until close)
directly, so a chunk costs one task wake-up.

It is used only where it can behave exactly like httpx (``GatewayClient`` decides): ``http://``
gateways reached without a proxy, for the streaming requests. Everything else (model lists,
``https://``, proxies, test transports) goes through httpx. Failures raise httpx's exception
types with httpx's meaning (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``,
``WriteTimeout``, ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``, ``DecodingError``), so
callers map them to messages once. Connections are kept alive and reused like httpx's pool:
at most ``max_connections`` at once, ``max_keepalive`` idle, each idle at most ``keepalive_expiry``
seconds, never reused after an error, a timeout or a response not read to its end.
"""

# Every method here takes timeouts as arguments, like httpcore's network interface.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

_MAX_HEAD = 64 * 1024  # status line and headers
_MAX_LINE = 4 * 1024  # a chunk-size line or a trailer line
_HIGH_WATER = 256 * 1024  # stop reading from the socket when this much is buffered
_LOW_WATER = 64 * 1024


class _Protocol(asyncio.Protocol):
    """Buffers what the socket receives; wakes the one reader waiting for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_all()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake_all()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_all(self) -> None:
        for waiter in (self.waiter, self.drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


def _expire(waiter: asyncio.Future[None], error: Exception) -> None:
    if not waiter.done():
        waiter.set_exception(error)


class _Connection:
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._timeout = 0.0

    @property
    def usable(self) -> bool:
        """Still open, and nothing arrived while it sat idle (which would be a protocol error
        or the server closing it)."""
        protocol = self.protocol
        return not (protocol.eof or protocol.buffer or self.transport.is_closing())

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transport.close()

    async def receive(self, timeout: float | None) -> None:
        """Wait until more bytes (or the end of the stream) arrive; at most ``timeout`` s.

        One timer serves many waits: each wait only moves the deadline, and the timer, when it
        fires early, sets itself again for the rest (a timer per chunk cost more than the
        chunk's parsing)."""
        protocol = self.protocol
        if protocol.eof:
            return
        if protocol.reading_paused and len(protocol.buffer) < _LOW_WATER:
            protocol.reading_paused = False
            self.transport.resume_reading()
        loop = asyncio.get_running_loop()
        waiter = protocol.waiter = loop.create_future()
        if timeout is not None:
            self._timeout = timeout
            self._deadline = loop.time() + timeout
            if self._timer is None:
                self._timer = loop.call_at(self._deadline, self._check_deadline)
        try:
            await waiter
        finally:
            protocol.waiter = None

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self.protocol.waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait sets a timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            error = httpx.ReadTimeout(f"no data from the gateway for {self._timeout:g} s")
            waiter.set_exception(error)
        else:
            self._timer = loop.call_at(self._deadline, self._check_deadline)

    async def send(self, data: bytes, timeout: float | None) -> None:
        protocol = self.protocol
        if protocol.eof or self.transport.is_closing():
            raise httpx.WriteError("the gateway closed the connection")
        self.transport.write(data)
        if not protocol.writing_paused:
            return
        loop = asyncio.get_running_loop()
        waiter = protocol.drain_waiter = loop.create_future()
        timer = None
        if timeout is not None:
            error = httpx.WriteTimeout(f"the gateway accepted nothing for {timeout:g} s")
            timer = loop.call_later(timeout, _expire, waiter, error)
        try:
            await waiter
        finally:
            protocol.drain_waiter = None
            if timer is not None:
                timer.cancel()
        if protocol.error is not None or protocol.eof:
            raise httpx.WriteError(_describe(protocol.error, "the gateway closed the connection"))


def _describe(error: BaseException | None, default: str) -> str:
    return (str(error) or type(error).__name__) if error is not None else default


class FastResponse:
    """The parts of ``httpx.Response`` that ``GatewayClient`` uses on a streamed answer."""

    def __init__(
        self,
        lane: FastLane,
        connection: _Connection,
        status_code: int,
        headers: dict[str, str],
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._lane = lane
        self._connection: _Connection | None = connection
        self.status_code = status_code
        self.headers = headers
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._complete = False
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            self._decoder = None
        elif encoding == "gzip":
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._decoder = _DeflateDecoder()
        else:
            raise httpx.DecodingError(f"unsupported content encoding {encoding!r}")

    @property
    def is_closed(self) -> bool:
        return self._connection is None

    async def aclose(self) -> None:
        """Give the connection back when the body was read to its end; otherwise close it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._lane._release(connection, reuse=self._complete and self._keep_alive)
            self._lane._slot_free()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, decoded, in pieces as they arrive (a chunked body: chunk by chunk)."""
        return self._body()

    async def _body(self) -> AsyncIterator[bytes]:
        framing = self.headers.get("transfer-encoding", "").lower()
        if self.status_code in (204, 304):
            pieces = _Fixed(0)
        elif "chunked" in framing:
            pieces = _Chunked()
        elif "content-length" in self.headers:
            try:
                pieces = _Fixed(int(self.headers["content-length"]))
            except ValueError as exc:
                raise httpx.RemoteProtocolError("malformed Content-Length") from exc
        else:
            pieces = _UntilClose()
        waited = True
        while self._connection is not None:
            connection = self._connection
            protocol = connection.protocol
            if not waited:
                # More was buffered already: let other tasks run between pieces (the runner's
                # publisher, other streams), as httpx does at every read.
                await asyncio.sleep(0)
            raw, done = pieces.take(protocol.buffer, protocol.eof)
            waited = False
            data = self._decode(raw) if raw and self._decoder is not None else raw
            if data:
                yield data
            if done and protocol.error is not None and isinstance(pieces, _UntilClose):
                raise httpx.ReadError(_describe(protocol.error, "connection lost"))
            if done:
                if self._decoder is not None and (tail := self._decoder.flush()):
                    yield tail
                self._complete = True
                if isinstance(pieces, _UntilClose):
                    self._keep_alive = False
                return
            if raw:
                continue  # maybe more is buffered
            if protocol.eof:
                if protocol.error is not None:
                    raise httpx.ReadError(_describe(protocol.error, "connection lost"))
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            if self._connection is connection:
                await connection.receive(self._read_timeout)
                waited = True

    def _decode(self, data: bytes) -> bytes:
        try:
            return self._decoder.decompress(data)
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc)) from exc


class _DeflateDecoder:
    """``deflate`` is zlib-wrapped by the standard, raw deflate by some servers (as in httpx)."""

    def __init__(self) -> None:
        self._first = True
        self._decoder = zlib.decompressobj()

    def decompress(self, data: bytes) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._decoder.decompress(data)
            except zlib.error:
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._decoder.decompress(data)

    def flush(self) -> bytes:
        return self._decoder.flush()


class _Fixed:
    def __init__(self, length: int) -> None:
        self.left = length

    def take(self, buffer: bytearray, eof: bool) -> tuple[bytes, bool]:
        if not self.left:
            return b"", True
        data = bytes(buffer[: self.left])
        del buffer[: len(data)]
        self.left -= len(data)
        return data, not self.left


class _UntilClose:
    def take(self, buffer: bytearray, eof: bool) -> tuple[bytes, bool]:
        data = bytes(buffer)
        buffer.clear()
        return data, eof


class _Chunked:
    """Transfer-Encoding: chunked, decoded from whatever part of it has arrived."""

    def __init__(self) -> None:
        self.left: int | None = None  # bytes left of the current chunk; None: a size line next
        self.trailers = False

    def take(self, buffer: bytearray, eof: bool) -> tuple[bytes, bool]:
        out: list[bytes] = []
        while True:
            if self.trailers:
                end = buffer.find(b"\r\n")
                if end < 0:
                    self._check_line(buffer)
                    break
                del buffer[: end + 2]
                if end == 0:
                    return b"".join(out), True  # the blank line after the trailers
            elif self.left is None:
                end = buffer.find(b"\r\n")
                if end < 0:
                    self._check_line(buffer)
                    break
                size_field = bytes(buffer[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_field, 16)
                except ValueError:
                    raise httpx.RemoteProtocolError("malformed chunk size") from None
                if size < 0:
                    raise httpx.RemoteProtocolError("malformed chunk size")
                del buffer[: end + 2]
                if size == 0:
                    self.trailers = True
                else:
                    self.left = size
            elif self.left:
                if out or not buffer:
                    break  # one chunk at a time, like h11
                piece = bytes(buffer[: self.left])
                del buffer[: len(piece)]
                self.left -= len(piece)
                out.append(piece)
            else:  # the CRLF that ends a chunk's data
                if len(buffer) < 2:
                    break
                if buffer[:2] != b"\r\n":
                    raise httpx.RemoteProtocolError("malformed chunked body")
                del buffer[:2]
                self.left = None
        return b"".join(out), False

    @staticmethod
    def _check_line(buffer: bytearray) -> None:
        if len(buffer) > _MAX_LINE:
            raise httpx.RemoteProtocolError("chunk header line too long")


class FastLane:
    """Keep-alive HTTP/1.1 connections to one plain-HTTP gateway, for streamed POSTs."""

    def __init__(
        self,
        base_url: str,
        headers: httpx.Headers,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        max_connections: int = 1000,
        max_keepalive: int = 100,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._host = self._base.host
        self._port = self._base.port or 80
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        # Headers as httpx would send them (its defaults, the client's), but no compression:
        # identity avoids inflating every chunk (a gateway that compresses anyway is decoded).
        fixed = {name.lower(): value for name, value in headers.items()}
        fixed["accept-encoding"] = "identity"
        fixed["connection"] = "keep-alive"
        self._headers = fixed
        self._targets: dict[str, bytes] = {}
        self._idle: list[_Connection] = []
        self._active = 0
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    @staticmethod
    def suits(client: httpx.AsyncClient, base_url: str) -> bool:
        """True when httpx would send requests for ``base_url`` straight to a plain-HTTP
        server (no proxy from the environment, no custom transport)."""
        url = httpx.URL(base_url.rstrip("/") + "/")
        if url.scheme != "http" or not url.host:
            return False
        transport_for = getattr(client, "_transport_for_url", None)
        default = getattr(client, "_transport", None)
        if transport_for is None or type(default) is not httpx.AsyncHTTPTransport:
            return False
        try:
            return transport_for(url) is default
        except Exception:  # an unexpected httpx internals change: keep using httpx
            return False

    async def post(
        self, path: str, body: Any, extra_headers: dict[str, str], write_timeout: float | None
    ) -> FastResponse:
        """Send a JSON POST and read the response head. The caller reads the body with
        ``aiter_bytes`` and must ``aclose`` the response (on every path)."""
        await self._slot_take()
        connection: _Connection | None = None
        try:
            connection = await self._connection()
            content = json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            request = self._request(path, content, extra_headers)
            await connection.send(request + content, write_timeout)
            status, headers, keep_alive = await self._read_head(connection)
            response = FastResponse(
                self, connection, status, headers, keep_alive, self._read_timeout
            )
        except BaseException:
            if connection is not None:
                connection.close()
            self._slot_free()
            raise
        return response

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # -- connections --------------------------------------------------------------------------

    async def _slot_take(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection to the gateway") from None
        else:
            await self._slots.acquire()  # returns at once
        self._active += 1

    def _slot_free(self) -> None:
        self._active -= 1
        if self._slots is not None:
            self._slots.release()

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable and now - connection.idle_since < self._keepalive_expiry:
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, self._host, self._port
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("no answer in time") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Connection(transport, protocol)  # type: ignore[arg-type]

    def _release(self, connection: _Connection, *, reuse: bool) -> None:
        if (
            reuse
            and not self._closed
            and connection.usable
            and len(self._idle) < self._max_keepalive
        ):
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    # -- HTTP/1.1 ------------------------------------------------------------------------------

    def _request(self, path: str, content: bytes, extra: dict[str, str]) -> bytes:
        target = self._targets.get(path)
        if target is None:
            target = self._targets[path] = self._base.join(path).raw_path
        headers = {"host": self._base.netloc.decode("ascii"), **self._headers}
        headers.update({name.lower(): value for name, value in extra.items()})
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(content))
        lines = [b"POST " + target + b" HTTP/1.1"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:
                raise httpx.LocalProtocolError(f"invalid header value for {name}")
            lines.append(f"{name}: {value}".encode("latin-1"))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _read_head(self, connection: _Connection) -> tuple[int, dict[str, str], bool]:
        protocol = connection.protocol
        while True:  # skip interim 1xx answers
            while (end := protocol.buffer.find(b"\r\n\r\n")) < 0:
                if len(protocol.buffer) > _MAX_HEAD:
                    raise httpx.RemoteProtocolError("response headers too long")
                if protocol.eof:
                    if protocol.error is not None:
                        raise httpx.ReadError(_describe(protocol.error, "connection lost"))
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                await connection.receive(self._read_timeout)
            head = bytes(protocol.buffer[:end]).decode("latin-1")
            del protocol.buffer[: end + 4]
            status_line, *header_lines = head.split("\r\n")
            version, _, rest = status_line.partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise httpx.RemoteProtocolError(f"malformed status line {status_line[:100]!r}")
            status = int(code)
            if 100 <= status < 200:
                continue
            headers: dict[str, str] = {}
            for line in header_lines:
                name, colon, value = line.partition(":")
                if not colon or not name or name != name.strip():
                    raise httpx.RemoteProtocolError("malformed response header")
                name, value = name.lower(), value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            keep_alive = (
                version == "HTTP/1.1"
                and "close" not in headers.get("connection", "").lower()
                and status != 101
            )
            return status, headers, keep_alive
