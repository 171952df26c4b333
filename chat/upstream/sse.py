"""Incremental Server-Sent Events parser (bytes in, messages out).

Follows the WHATWG "event stream interpretation" rules. Network chunks may end anywhere: inside a
UTF-8 character, inside a line, or between the ``\\r`` and ``\\n`` of a CRLF, so all state that
spans chunks lives on the parser. Each byte is decoded and scanned once (O(n) in the stream length),
even when one very long line arrives in many small chunks.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["SSEMessage", "SSEParser", "iter_sse"]

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched event. ``id`` is the stream's last event id, which persists (per the spec)."""

    event: str | None
    data: str
    id: str | None = None


class SSEParser:
    """Feed it raw bytes as they arrive; it returns the messages completed so far."""

    def __init__(self) -> None:
        # errors="replace": one bad byte from a gateway should not kill the whole answer.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []  # pieces of the current, unterminated line
        self._skip_lf = False  # the previous chunk ended with "\r"; a leading "\n" belongs to it
        self._at_start = True  # a byte order mark is only stripped at the very start
        self._event: str | None = None
        self._data: list[str] = []
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        """Parse one network chunk; return the messages it completed (often none)."""
        if chunk.endswith(b"\n\n") and self._between_events() and b"\r" not in chunk:
            return self._feed_whole_events(chunk)
        return self._feed_text(self._decoder.decode(chunk))

    def _between_events(self) -> bool:
        """Nothing of a line, an event or a character is pending from earlier chunks."""
        return not (
            self._partial
            or self._data
            or self._event is not None
            or self._skip_lf
            or self._at_start
            or self._decoder.getstate()[0]
        )

    def _feed_whole_events(self, chunk: bytes) -> list[SSEMessage]:
        """The usual chunk: whole events, ending with a blank line, "\n" line ends only. The
        same rules as :meth:`_feed_text`, without its line-end search and partial-line state:
        a gateway sends one event (or a few) per network chunk, and this is per chunk."""
        messages: list[SSEMessage] = []
        lines = chunk.decode("utf-8", "replace").split("\n")
        lines.pop()  # the empty rest after the last line end
        for line in lines:
            if line.startswith("data: "):
                self._data.append(line[6:])
            elif line.startswith("event: "):
                self._event = line[7:]
            else:
                self._process_line(line, messages)
        return messages

    def close(self) -> list[SSEMessage]:
        """End of stream: flush the decoder, a last unterminated line and a pending message.

        The spec would drop an event not followed by a blank line; gateways often omit that final
        blank line (e.g. after ``data: [DONE]``), so it is dispatched instead.
        """
        messages = self._feed_text(self._decoder.decode(b"", final=True))
        if self._partial:
            line = "".join(self._partial)
            self._partial.clear()
            self._process_line(line, messages)
        self._dispatch(messages)
        self._skip_lf = False
        return messages

    def _feed_text(self, text: str) -> list[SSEMessage]:
        messages: list[SSEMessage] = []
        if not text:
            return messages
        if self._at_start:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        start = 0
        for match in _LINE_END.finditer(text):
            piece = text[start : match.start()]
            if self._partial:
                self._partial.append(piece)
                piece = "".join(self._partial)
                self._partial.clear()
            self._process_line(piece, messages)
            start = match.end()
        if start < len(text):
            self._partial.append(text[start:])
        elif text.endswith("\r"):
            # This "\r" was taken as a whole line ending; if "\n" comes next it is the same one.
            self._skip_lf = True
        return messages

    def _process_line(self, line: str, messages: list[SSEMessage]) -> None:
        if not line:
            self._dispatch(messages)
            return
        if line[0] == ":":
            return  # comment, e.g. a keep-alive ping
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._last_id = value
        # "retry" and unknown fields are ignored: we never reconnect a generation stream.

    def _dispatch(self, messages: list[SSEMessage]) -> None:
        if self._data:  # a "data:" line with an empty value still counts
            messages.append(SSEMessage(self._event or None, "\n".join(self._data), self._last_id))
        self._event = None
        self._data = []


async def iter_sse(byte_iter: AsyncIterable[bytes]) -> AsyncIterator[SSEMessage]:
    """Parse an async stream of byte chunks into SSE messages, flushing at the end."""
    parser = SSEParser()
    async for chunk in byte_iter:
        for message in parser.feed(chunk):
            yield message
    for message in parser.close():
        yield message
