"""Websocket helpers for tests: a browser's socket to a thread, and reading until a fragment."""

from __future__ import annotations

import re

from channels.testing import WebsocketCommunicator

from chat.routing import websocket_application

ORIGIN = (b"origin", b"http://127.0.0.1")
# Every browser handshake names the host; the origin check compares the two.
HOST = (b"host", b"127.0.0.1")


class Socket(WebsocketCommunicator):
    """A browser's socket to a thread; who-is-viewing updates are left to the presence tests."""

    async def receive_from(self, timeout: float = 1) -> str:  # noqa: ASYNC109 (the base's name)
        while True:
            message = await super().receive_from(timeout)
            if 'id="presence"' not in message:
                return message

    async def receive_presence(self, wait: float = 5) -> str:
        while True:
            message = await super().receive_from(wait)
            if 'id="presence"' in message:
                return message


def socket(thread_id: int, *headers: tuple[bytes, bytes], query: str = "") -> Socket:
    """A socket as a browser on http://127.0.0.1 opens it (unless ``headers`` name a host)."""
    path = f"/ws/threads/{thread_id}/" + (f"?{query}" if query else "")
    if not any(name == b"host" for name, _value in headers):
        headers = (*headers, HOST)
    return Socket(websocket_application, path, headers=list(headers))


async def receive_until(ws: WebsocketCommunicator, pattern: str, wait: float = 10) -> list[str]:
    """Messages received up to and including the first one matching ``pattern``."""
    received = []
    while True:
        message = await ws.receive_from(timeout=wait)
        received.append(message)
        if re.search(pattern, message):
            return received


def finished(turn_id: int, status: str = "completed") -> str:
    return rf'id="turn-{turn_id}" class="turn" data-status="{status}"'
