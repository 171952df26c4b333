"""Reading the HTML fragments a server pushes over a websocket the way htmx applies them."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip


class _ElementFinder(HTMLParser):
    def __init__(self, source: str, element_id: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.element_id = element_id
        self.line_starts = [0]
        for line in source.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.depth: int | None = None
        self.start: int | None = None
        self.end: int | None = None
        self.start_tag = ""

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.end is not None:
            return
        if self.depth is None:
            if dict(attrs).get("id") == self.element_id:
                self.start_tag = self.get_starttag_text() or ""
                self.start = self._offset() + len(self.start_tag)
                self.depth = 0 if tag not in _VOID else None
        elif tag not in _VOID:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth is None or self.end is not None or tag in _VOID:
            return
        if self.depth == 0:
            self.end = self._offset()
        else:
            self.depth -= 1


def element(html: str, element_id: str) -> tuple[str, str] | None:
    """(start tag, inner HTML) of the first element with this id in a fragment, or None."""
    finder = _ElementFinder(html, element_id)
    finder.feed(html)
    finder.close()
    if finder.start is None or finder.end is None:
        return None
    return finder.start_tag, html[finder.start : finder.end]


class AnswerView:
    """What a browser shows of one turn's answer, built from the fragments it receives the way
    htmx applies them: an article replaces the answer; a delta appends finished blocks to
    ``turn-N-answer`` and replaces ``turn-N-tail``."""

    def __init__(self, turn_id: int) -> None:
        self.turn_id = turn_id
        self.blocks = ""  # the finished blocks shown, in order
        self.tail = ""
        self.status = ""
        self.articles = 0
        self.deltas = 0

    def apply(self, message: str) -> None:
        article = element(message, f"turn-{self.turn_id}")
        if article is not None:
            self.articles += 1
            status = re.search(r'data-status="([^"]*)"', article[0])
            self.status = status.group(1) if status else ""
            answer = element(article[1], f"turn-{self.turn_id}-answer")
            tail = element(article[1], f"turn-{self.turn_id}-tail")
            self.blocks = answer[1] if answer else ""
            self.tail = tail[1] if tail else ""
            return
        appended = element(message, f"turn-{self.turn_id}-answer")
        tail = element(message, f"turn-{self.turn_id}-tail")
        if appended is not None and 'hx-swap-oob="beforeend"' in appended[0]:
            self.blocks += appended[1]
        if tail is not None and 'hx-swap-oob="innerHTML"' in tail[0]:
            self.tail = tail[1]
            self.deltas += 1
