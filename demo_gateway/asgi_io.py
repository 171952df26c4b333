"""Plain ASGI plumbing: JSON in and out, and waiting for a client to hang up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from demo_gateway.errors import Done, HTTPError, error_body
from demo_gateway.wire import json_bytes

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_BODY = 64 * 1024 * 1024  # room for several base64 images and files
HANG_SECONDS = 3600.0


def response_start(status: int, content_type: bytes, headers: list | None = None) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), *(headers or [])],
    }


async def send_json(send: Send, status: int, value: Any, headers: list | None = None) -> None:
    body = json_bytes(value)
    extra = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send(response_start(status, b"application/json", extra))
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def read_json(receive: Receive) -> dict[str, Any]:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Done  # nobody is listening any more
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > _MAX_BODY:
            raise HTTPError(413, error_body("Request body too large.", "invalid_request_error"))
        if not message.get("more_body"):
            break
    try:
        body = json.loads(b"".join(parts))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPError(
            400,
            error_body(
                "We could not parse the JSON body of your request.", "invalid_request_error"
            ),
        )
    return body


async def watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it happened."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def until_disconnect(receive: Receive, seconds: float) -> bool:
    """Wait up to ``seconds`` for the client to hang up; True if it did."""
    disconnected = asyncio.Event()
    watcher = asyncio.create_task(watch_disconnect(receive, disconnected))
    try:
        return await wait_for(disconnected, seconds)
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
