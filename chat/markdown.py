"""Model output → safe HTML: markdown-it-py, Pygments highlighting, then nh3 sanitizing.

Model output is untrusted input: raw HTML in it is escaped by the parser and whatever comes out
is cleaned again by nh3 with an allow-list, so a prompt-injected ``<script>`` never runs.

``StreamingMarkdown`` renders an answer while it grows at O(n) total cost: blocks that can no
longer change are rendered once and handed out; only the open tail block is re-rendered.
"""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")

_ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "em",
    "s",
    "del",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "div",
    "img",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "div": {"class"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}
_ALLOWED_STYLES = {"text-align"}


@functools.lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer | None:
    # Looking a lexer up scans Pygments' registry; streaming asks for the same one every flush.
    try:
        return get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, _attrs: str) -> str:
    lexer = _lexer(lang.strip())
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    body = pygments_highlight(code, lexer, _FORMATTER)
    return f'<pre class="code"><code class="language-{lexer.aliases[0]}">{body}</code></pre>'


def _make_parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(
        ["table", "strikethrough"]
    )


_PARSER = _make_parser()


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        filter_style_properties=_ALLOWED_STYLES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def render_markdown(text: str) -> str:
    """Render a whole text to sanitized HTML."""
    return sanitize(_PARSER.render(text)) if text else ""


class StreamingMarkdown:
    """Renders a growing markdown text in finished blocks plus one open tail.

    Call ``append`` with each delta and ``flush`` when the page should be updated. ``flush``
    returns the HTML of blocks that became final since the last flush (append them once) and
    the HTML of the open tail (replace it each time). Only the tail is parsed again, so the
    total cost stays linear in the length of the answer.
    """

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._tail = ""
        self.tail_html = ""

    def append(self, delta: str) -> None:
        self._tail += delta

    def flush(self) -> tuple[list[str], str]:
        new_blocks: list[str] = []
        tokens = _PARSER.parse(self._tail)
        starts = [t.map[0] for t in tokens if t.level == 0 and t.nesting >= 0 and t.map]
        if len(starts) > 1:
            # Everything before the last top-level block can no longer change its rendering.
            lines = self._tail.splitlines(keepends=True)
            cut = starts[-1]
            finished, self._tail = "".join(lines[:cut]), "".join(lines[cut:])
            if finished.strip():
                new_blocks.append(render_markdown(finished))
                self.blocks.extend(new_blocks)
            self.tail_html = render_markdown(self._tail)
        else:
            # Nothing was cut: render the tokens already parsed instead of parsing again.
            html = _PARSER.renderer.render(tokens, _PARSER.options, {}) if self._tail else ""
            self.tail_html = sanitize(html) if html else ""
        return new_blocks, self.tail_html
