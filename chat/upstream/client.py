"""HTTP client for the gateway: one pooled ``httpx.AsyncClient`` per provider, streams → events.

Streaming methods never raise for things that go wrong on the network or at the gateway: they end
with a :class:`~chat.upstream.events.Failed` whose message is fit to show a user, so the caller has
exactly one code path for "the answer ended".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from . import chat_completions, eager, responses_api
from .events import Completed, Event, Failed
from .network import use_asyncio_backend
from .sse import SSEMessage, SSEParser

__all__ = [
    "CUT_MESSAGE",
    "ClientPool",
    "GatewayClient",
    "GatewayError",
    "Timeouts",
    "close_all",
    "get_client",
    "http_failure",
]

CUT_MESSAGE = "The answer was cut off: the gateway closed the stream before it finished."

_ERROR_BODY_LIMIT = 64 * 1024  # enough for any error JSON; a huge error page is not read whole
_JSON_BODY_LIMIT = 16 * 1024 * 1024  # a gateway that ignored stream=True sends the answer whole
_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 1.0
# At most this many events in one batch: a gateway far faster than the relay still yields to
# the event loop (one batch is parsed without a pause).
_BATCH_EVENTS = 512
_TERMINAL = (Completed, Failed)

# Plain-words headline per status, and a hint used when the gateway gave no message of its own.
_STATUS_WORDS: dict[int, tuple[str, str]] = {
    400: ("The gateway rejected the request", ""),
    401: ("The gateway refused the API key", "Check the provider's API key."),
    403: ("The gateway denied access", "Check the provider's API key and its permissions."),
    404: ("The gateway does not know this model or endpoint", "Check the model and the base URL."),
    408: ("The gateway timed out", "Try again shortly."),
    413: ("The request was too large for the gateway", "Try a shorter conversation."),
    429: ("The gateway is rate-limiting requests", "Try again shortly."),
    500: ("The gateway had an internal error", "Try again shortly."),
    502: ("The gateway could not reach the model", "Try again shortly."),
    503: ("The gateway is unavailable", "Try again shortly."),
    504: ("The gateway timed out waiting for the model", "Try again shortly."),
}


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``read`` is the longest silence allowed between two chunks; ``total`` caps the
    whole request, however steadily it streams."""

    connect: float = 5.0
    read: float = 60.0
    total: float = 600.0


class GatewayError(Exception):
    """A non-streaming call failed; same fields as :class:`Failed`."""

    def __init__(
        self, message: str, kind: str, status_code: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code
        self.code = code

    @classmethod
    def from_failed(cls, failed: Failed) -> GatewayError:
        return cls(failed.message, failed.kind, failed.status_code, failed.code)


def http_failure(status_code: int, body: bytes) -> Failed:
    """A user-facing failure for an HTTP error answer, using the gateway's own message if any."""
    message: str | None = None
    code: str | None = None
    try:
        payload = json.loads(body.decode("utf-8", "replace")) if body else None
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            found = error.get("message") or error.get("detail")
            message = found if isinstance(found, str) else None
            code = str(error["code"]) if error.get("code") else None
        elif isinstance(error, str):
            message = error
    generic = "rejected the request" if status_code < 500 else "had an error"
    headline, hint = _STATUS_WORDS.get(status_code, (f"The gateway {generic}", ""))
    headline = f"{headline} ({status_code})"
    if message and message.strip():
        text = f"{headline}: {_shorten(message.strip(), 500)}"
    else:
        text = f"{headline}. {hint}".strip()
    return Failed(text, "http", status_code=status_code, code=code)


def _takes_files(item: dict[str, Any]) -> bool:
    """A model-list entry that says the model reads files (documents) as input."""
    architecture = item.get("architecture")
    inputs = item.get("input_modalities")
    if inputs is None and isinstance(architecture, dict):
        inputs = architecture.get("input_modalities")
    return isinstance(item.get("id"), str) and isinstance(inputs, list) and "file" in inputs


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value:g} s"


class _Translator(Protocol):
    def feed(self, message: SSEMessage) -> list[Event]: ...

    def close(self) -> list[Event]: ...


# Every generating turn holds one connection for the whole answer; up to 100 idle ones are
# kept for the next turns (httpcore's limit as it should count, chat/upstream/network.py), each
# for up to 5 s.
MAX_CONNECTIONS, MAX_IDLE_CONNECTIONS = 1000, 100


class GatewayClient:
    """All requests to one gateway (one provider), over one pooled connection pool.

    Consume a stream with ``contextlib.aclosing`` (or let the task be cancelled): either way the
    HTTP response is closed as soon as the consumer stops.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts = Timeouts(),  # frozen, so one shared default is safe
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self._identity = (self.base_url, api_key, timeouts)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            # The trailing slash makes httpx append "models", "responses"… to the /v1 path.
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                read=timeouts.read,
                write=timeouts.read,
                pool=timeouts.connect,
            ),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_IDLE_CONNECTIONS
            ),
            transport=transport,
        )
        if transport is None:
            use_asyncio_backend(self._http)  # no anyio cancel scope around every read
        self._in_flight = 0
        self._retired = False

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def matches(self, base_url: str, api_key: str, timeouts: Timeouts) -> bool:
        return self._identity == (base_url.rstrip("/"), api_key, timeouts)

    async def list_models(self) -> list[str]:
        """Model ids the gateway offers, sorted. Raises :class:`GatewayError`."""
        return (await self.list_models_and_inputs())[0]

    async def list_models_and_inputs(self) -> tuple[list[str], frozenset[str]]:
        """Model ids the gateway offers, sorted, and those its list says take files as input
        (``input_modalities``, or OpenRouter's ``architecture.input_modalities``, with "file").
        Raises :class:`GatewayError`."""
        try:
            async with asyncio.timeout(self.timeouts.total):
                response = await self._http.get("models")
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
            raise GatewayError.from_failed(self._exception_failure(exc, answering=False)) from exc
        if response.status_code >= 400:
            raise GatewayError.from_failed(http_failure(response.status_code, response.content))
        try:
            payload = response.json()
        except (ValueError, RecursionError):
            payload = None
        items = payload.get("data") if isinstance(payload, dict) else payload
        if not isinstance(items, list):
            raise GatewayError("The gateway's list of models could not be read.", "protocol")
        ids = {item.get("id") if isinstance(item, dict) else item for item in items}
        takes_files = frozenset(
            item["id"] for item in items if isinstance(item, dict) and _takes_files(item)
        )
        return sorted(model for model in ids if isinstance(model, str) and model), takes_files

    def stream_responses(self, body: dict[str, Any]) -> AsyncIterator[Event]:
        """POST ``/responses`` (see :func:`responses_api.build_request`) and yield its events."""
        return _one_by_one(self.stream_responses_batches(body))

    def stream_chat(self, body: dict[str, Any]) -> AsyncIterator[Event]:
        """POST ``/chat/completions`` (see :func:`chat_completions.build_request`), yield events."""
        return _one_by_one(self.stream_chat_batches(body))

    def stream_responses_batches(self, body: dict[str, Any]) -> AsyncIterator[list[Event]]:
        """:meth:`stream_responses` one network read at a time: each step yields the (non-empty)
        list of events that read completed, so a relay pays the async hops per read, not per
        event. The final event (``Completed``/``Failed``) comes alone, after the response is
        released."""
        return self._stream(
            "responses",
            body,
            responses_api.ResponsesStreamTranslator(),
            responses_api.parse_response,
        )

    def stream_chat_batches(self, body: dict[str, Any]) -> AsyncIterator[list[Event]]:
        """:meth:`stream_chat` one network read at a time (see :meth:`stream_responses_batches`)."""
        return self._stream(
            "chat/completions",
            body,
            chat_completions.ChatStreamTranslator(),
            chat_completions.parse_response,
        )

    @contextlib.asynccontextmanager
    async def raw_response(
        self, path: str, body: dict[str, Any], *, stream: bool
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` to ``path`` and hand over the response unread (the API relays its bytes
        as they come); closed when the block ends. Raises httpx errors as they are."""
        self._in_flight += 1
        response: httpx.Response | None = None
        try:
            accept = "text/event-stream" if stream else "application/json"
            request = self._http.build_request("POST", path, json=body, headers={"Accept": accept})
            response = await self._http.send(request, stream=True)
            yield response
        finally:
            if response is not None:
                await response.aclose()
            self._in_flight -= 1
            if self._retired and self._in_flight == 0:
                _close_soon(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    def retire(self) -> None:
        """Close this client once its running streams end (its provider settings changed)."""
        self._retired = True
        if self._in_flight == 0:
            _close_soon(self)

    async def _stream(
        self,
        path: str,
        body: dict[str, Any],
        translator: _Translator,
        parse_body: Callable[[dict[str, Any]], list[Event]],
    ) -> AsyncIterator[list[Event]]:
        # The total deadline is checked around each await only, never across a ``yield``: a
        # timeout scope spanning a yield would cancel whatever the *consumer* is doing.
        deadline = asyncio.get_running_loop().time() + self.timeouts.total
        response: httpx.Response | None = None
        chunks: AsyncIterator[bytes] | None = None
        answering = False
        terminal: Completed | Failed | None = None
        reader: _EventReader | None = None
        self._in_flight += 1
        try:
            request = self._http.build_request(
                "POST", path, json=body, headers={"Accept": "text/event-stream"}
            )
            async with asyncio.timeout_at(deadline):
                response = await self._http.send(request, stream=True)
            chunks = _body_chunks(response)
            if response.status_code >= 400:
                async with asyncio.timeout_at(deadline):
                    raw = await _read_capped(chunks, _ERROR_BODY_LIMIT)
                terminal = http_failure(response.status_code, raw)
            elif response.headers.get("content-type", "").startswith("application/json"):
                # The gateway ignored stream=True and answered in one piece.
                shown, found = _until_terminal(await _read_json(chunks, deadline, parse_body))
                if shown:
                    yield shown
                terminal = found or Failed(CUT_MESSAGE, "protocol")
            else:
                answering = True
                reader = _EventReader(chunks, deadline, self.timeouts.read, translator)
                while terminal is None:
                    events, ended = await reader.next_batch()
                    shown, found = _until_terminal(events)
                    if shown:
                        yield shown
                    terminal = found
                    if ended and terminal is None:
                        terminal = Failed(CUT_MESSAGE, "protocol")
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
            terminal = self._exception_failure(exc, answering=answering)
        finally:
            # Runs on success, on failure, and when the consumer stops or is cancelled.
            self._in_flight -= 1
            if response is not None:
                await _release(response, chunks, reader, drain=isinstance(terminal, Completed))
            if self._retired and self._in_flight == 0:
                _close_soon(self)
        # Yielded only after the response is released, so a consumer that stops at the final
        # event leaves nothing open.
        if terminal is not None:
            yield [terminal]

    def _exception_failure(self, exc: Exception, *, answering: bool) -> Failed:
        t = self.timeouts
        if isinstance(exc, TimeoutError):
            return Failed(
                f"The answer took longer than the {_seconds(t.total)} limit and was stopped.",
                "timeout",
            )
        if isinstance(exc, httpx.ReadTimeout):
            if answering:
                message = (
                    f"The gateway stopped responding (nothing for {_seconds(t.read)}), "
                    "so the answer was stopped."
                )
            else:
                message = f"The gateway did not respond within {_seconds(t.read)}."
            return Failed(message, "timeout")
        if isinstance(exc, httpx.PoolTimeout):
            return Failed(
                "Too many answers are streaming at once: no free connection to the gateway "
                f"within {_seconds(t.connect)}.",
                "timeout",
            )
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            detail = "no answer in time" if isinstance(exc, httpx.ConnectTimeout) else str(exc)
            suffix = f" ({detail})" if detail else ""
            return Failed(f"Could not reach the gateway at {self.base_url}{suffix}.", "connection")
        if isinstance(exc, httpx.TimeoutException):  # write timeout: the gateway stopped reading
            return Failed(
                f"The gateway did not accept the request within {_seconds(t.read)}.", "timeout"
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return Failed(f"The gateway URL {self.base_url!r} is not valid.", "connection")
        if isinstance(exc, httpx.DecodingError):
            return Failed(responses_api.MALFORMED_MESSAGE, "protocol")
        if answering and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return Failed(CUT_MESSAGE, "protocol")
        detail = str(exc) or type(exc).__name__
        return Failed(f"The connection to the gateway failed ({detail}).", "connection")


class _EventReader:
    """The events of an SSE body, one batch per step: the events of one network read, and of
    the reads after it whose data is already here (they complete at once; see ``eager``).
    The first read that would wait is kept started for the next step, so between two steps
    nothing is woken by what the gateway sends: a consumer that steps once per coalescing
    window reads each window's events in one go."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        deadline: float,
        read_timeout: float,
        translator: _Translator,
    ) -> None:
        self._chunks = chunks
        self._deadline = deadline
        self._read_timeout = read_timeout
        self._translator = translator
        self._parser = SSEParser()
        self._ahead: eager.Started[bytes] | None = None

    async def next_batch(self) -> tuple[list[Event], bool]:
        """The next events (maybe none), and whether the stream has ended."""
        read = self._ahead or anext(self._chunks)
        self._ahead = None
        try:
            if self._deadline - asyncio.get_running_loop().time() > self._read_timeout:
                # A read waits at most the read timeout, so it ends before the deadline: no
                # timeout scope (it cost more than parsing the chunk).
                chunk = await read
            else:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await read
        except StopAsyncIteration:
            return self._end(), True
        events = fresh = self._parse(chunk)
        while len(events) < _BATCH_EVENTS and not _has_terminal(fresh):
            ahead = eager.start(anext(self._chunks))
            if not ahead.succeeded:  # it waits, or it failed: the next step finishes it
                self._ahead = ahead
                break
            fresh = self._parse(ahead.result())
            events += fresh
        return events, False

    async def abandon(self) -> None:
        """Stop a read kept started (the consumer stopped): it is cancelled inside."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            await ahead.abandon()

    def _parse(self, chunk: bytes) -> list[Event]:
        feed = self._translator.feed
        return [event for message in self._parser.feed(chunk) for event in feed(message)]

    def _end(self) -> list[Event]:
        events = [e for m in self._parser.close() for e in self._translator.feed(m)]
        return events + self._translator.close()


def _has_terminal(events: list[Event]) -> bool:
    return any(type(event) in _TERMINAL for event in events)


async def _one_by_one(batches: AsyncIterator[list[Event]]) -> AsyncIterator[Event]:
    async with contextlib.aclosing(batches):
        async for batch in batches:
            for event in batch:
                yield event


def _body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The response body as it arrives. Without a content encoding that is the raw stream
    itself: ``aiter_bytes`` would add two async generators (decoder, re-chunker) per read."""
    if response.headers.get("content-encoding", "identity").strip().lower() == "identity":
        return response.stream.__aiter__()  # type: ignore[union-attr]
    return response.aiter_bytes()


def _until_terminal(events: list[Event]) -> tuple[list[Event], Completed | Failed | None]:
    """The events before the first final one, and that final event (``None`` if there is none).

    The caller yields the first part before it records the second, so a consumer that stops
    early leaves the stream unfinished (and the response is not drained)."""
    for index, event in enumerate(events):
        if isinstance(event, Completed | Failed):
            return events[:index], event
    return events, None


async def _read_json(
    chunks: AsyncIterator[bytes],
    deadline: float,
    parse_body: Callable[[dict[str, Any]], list[Event]],
) -> list[Event]:
    """The events of an answer sent whole as JSON (a malformed body is one ``Failed``)."""
    async with asyncio.timeout_at(deadline):
        raw = await _read_capped(chunks, _JSON_BODY_LIMIT)
    try:
        return parse_body(json.loads(raw))
    except (ValueError, RecursionError):
        return [Failed(responses_api.MALFORMED_MESSAGE, "protocol")]


async def _read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


async def _release(
    response: httpx.Response,
    chunks: AsyncIterator[bytes] | None,
    reader: _EventReader | None,
    *,
    drain: bool,
) -> None:
    """Close the response; after a clean finish first read its (tiny) rest, because a response
    read to the end returns its connection to the keep-alive pool instead of closing it. A
    read the consumer left started is cancelled first."""
    try:
        if reader is not None:
            await reader.abandon()
        if drain and chunks is not None and not response.is_closed:
            async with asyncio.timeout(_DRAIN_SECONDS):
                await _read_capped(chunks, _DRAIN_BYTES)
    except (httpx.HTTPError, TimeoutError):
        pass
    finally:
        await response.aclose()


_closing: set[asyncio.Task[None]] = set()  # strong references, so pending closes are not lost


def _close_soon(client: GatewayClient) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop, so no open connection either
    task = loop.create_task(client.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class ClientPool:
    """One :class:`GatewayClient` per provider key, replaced when the provider's settings change.

    Clients are kept per event loop: connections belong to the loop that opened them, and tests
    (or ``async_to_sync``) may run several loops in one process.
    """

    def __init__(self) -> None:
        self._loops: dict[int, tuple[asyncio.AbstractEventLoop | None, dict[str, GatewayClient]]]
        self._loops = {}

    def get(
        self,
        key: str,
        base_url: str,
        api_key: str,
        timeouts: Timeouts = Timeouts(),
    ) -> GatewayClient:
        clients = self._clients_for_current_loop()
        client = clients.get(key)
        if client is not None and client.matches(base_url, api_key, timeouts):
            return client
        if client is not None:
            client.retire()
        client = GatewayClient(base_url, api_key, timeouts=timeouts)
        clients[key] = client
        return client

    async def close_all(self) -> None:
        """Close this loop's clients and forget every other loop's (they cannot be used here)."""
        clients = self._clients_for_current_loop()
        self._loops.clear()
        for client in clients.values():
            await client.aclose()

    def _clients_for_current_loop(self) -> dict[str, GatewayClient]:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for loop_id, (known, _) in list(self._loops.items()):
            if known is not None and known.is_closed():
                del self._loops[loop_id]
        return self._loops.setdefault(id(loop), (loop, {}))[1]


_pool = ClientPool()


def get_client(
    key: str,
    base_url: str,
    api_key: str,
    timeouts: Timeouts = Timeouts(),
) -> GatewayClient:
    """The shared client for provider ``key`` (see :class:`ClientPool`)."""
    return _pool.get(key, base_url, api_key, timeouts)


async def close_all() -> None:
    """Close the shared clients (at shutdown, or between tests)."""
    await _pool.close_all()
