"""Model output → safe HTML: markdown-it-py, Pygments highlighting, then nh3 sanitizing.

Model output is untrusted input: raw HTML in it is escaped by the parser and whatever comes out
is cleaned again by nh3 with an allow-list, so a prompt-injected ``<script>`` never runs. Images
then go through ``chat.image_policy``: one from another host is shown as a "Load image from
<host>" link, so a prompt-injected image URL cannot send data anywhere without a click.

``StreamingMarkdown`` renders an answer while it grows at O(n) total cost: blocks that can no
longer change are rendered once and handed out; only the open tail block is re-rendered.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from dataclasses import dataclass
from urllib.parse import urlencode

import nh3
from django.urls import reverse
from django.utils.translation import gettext as _
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from chat import image_policy
from chat.image_policy import ImagePolicy, RemoteImage
from chat.markdown_math import MATHML_ATTRIBUTES, MATHML_TAGS, math_plugin

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
    *MATHML_TAGS,  # math (chat.markdown_math): presentational MathML only
}
_ALLOWED_ATTRIBUTES = {
    **MATHML_ATTRIBUTES,
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "div": {"class"},
    "ol": {"start"},
    # Column alignment, as a class (``_aligned_cell``): the Content-Security-Policy allows no
    # style attribute, so no style ever gets through.
    "th": {"class"},
    "td": {"class"},
}
_ALIGNMENTS = {"left", "center", "right"}


@functools.lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer | None:
    # Looking a lexer up scans Pygments' registry; streaming asks for the same one every flush.
    try:
        return get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        return None


# Code blocks up to this size are remembered once highlighted: a streamed block is highlighted
# when it closes, and the same code again by the whole render at the end of the turn (and by
# every later page view). At most 256 of them, so a few MB at worst.
_CACHED_CODE_CHARS = 16 * 1024


def _highlight(code: str, lang: str, _attrs: str) -> str:
    lang = lang.strip()
    if len(code) <= _CACHED_CODE_CHARS:
        return _highlighted(code, lang)
    return _highlight_now(code, lang)


def _highlight_now(code: str, lang: str) -> str:
    lexer = _lexer(lang)
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    body = pygments_highlight(code, lexer, _FORMATTER)
    return f'<pre class="code"><code class="language-{lexer.aliases[0]}">{body}</code></pre>'


_highlighted = functools.lru_cache(maxsize=256)(_highlight_now)


def _aligned_cell(self, tokens: list[Token], idx: int, options: OptionsDict, env: dict) -> str:
    """A table cell with ``class="align-center"`` where markdown-it writes a style attribute."""
    token = tokens[idx]
    style = token.attrs.pop("style", None)
    alignment = str(style).removeprefix("text-align:") if style else ""
    if alignment in _ALIGNMENTS:
        token.attrSet("class", f"align-{alignment}")
    return self.renderToken(tokens, idx, options, env)


def _scrolling_table_open(
    self, tokens: list[Token], idx: int, options: OptionsDict, env: dict
) -> str:
    """A table in a box that scrolls sideways: a wide table never widens (or is clipped by)
    the answer. The box takes keyboard focus, so it scrolls without a mouse too."""
    return '<div class="table-scroll" tabindex="0">' + self.renderToken(tokens, idx, options, env)


def _scrolling_table_close(
    self, tokens: list[Token], idx: int, options: OptionsDict, env: dict
) -> str:
    return self.renderToken(tokens, idx, options, env) + "</div>"


def _make_parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(
        ["table", "strikethrough"]
    )
    parser.add_render_rule("th_open", _aligned_cell)
    parser.add_render_rule("td_open", _aligned_cell)
    math_plugin(parser)
    parser.add_render_rule("table_open", _scrolling_table_open)
    parser.add_render_rule("table_close", _scrolling_table_close)
    return parser


_PARSER = _make_parser()


# Built once: ``nh3.clean`` with these options converts them for every call, which cost
# eight times the cleaning of a streamed tail.
_CLEANER = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    attributes=_ALLOWED_ATTRIBUTES,
    # data: for inline images (``_guard_urls`` keeps only image types, and no data: link).
    url_schemes={"http", "https", "mailto", "data"},
    link_rel="noopener noreferrer nofollow",
    # The table's scroll box (``_scrolling_table_open``) is focusable; no other value passes.
    tag_attribute_values={"div": {"tabindex": {"0"}}},
)

# nh3's output is serialized canonically: every attribute value double-quoted, with "<", ">",
# "&" and '"' escaped, so a "<img" or "<a " in it is always a real tag and ">" ends it.
_IMG_TAG = re.compile(r"<img\b[^>]*>")
# A link's data: href (in a tag: text may hold 'href="data:…"' as it is). The case spelled
# out rather than IGNORECASE: five times faster on a long answer.
_DATA_HREF = re.compile(r'(<a\b[^>]*?)\shref="[\x00-\x20]*[dD][aA][tT][aA]:[^"]*"')
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')


def sanitize(html: str, images: ImagePolicy | None = None) -> str:
    """Clean HTML with the allow-list, then apply the image policy (default: the site's)."""
    return _guard_urls(_CLEANER.clean(html), images)


def render_markdown(text: str, images: ImagePolicy | None = None) -> str:
    """Render a whole text to sanitized HTML."""
    return sanitize(_PARSER.render(text), images) if text else ""


def _guard_urls(html: str, images: ImagePolicy | None) -> str:
    """Images load only as the policy says (others become a "Load image" link, or their alt
    text); links lose data: URLs. Most HTML has neither, and is returned as it is."""
    if "<img" in html:
        policy = images if images is not None else image_policy.current()
        html = _IMG_TAG.sub(lambda tag: _guarded_image(tag[0], policy), html)
    return _DATA_HREF.sub(r"\1", html)


def _guarded_image(tag: str, images: ImagePolicy) -> str:
    attributes = {name: html_lib.unescape(value) for name, value in _ATTRIBUTE.findall(tag)}
    alt = attributes.get("alt", "")
    decision = images.decide(attributes.get("src", ""))
    if decision.action == "load":
        return tag
    if decision.action == "ask" and decision.remote is not None:
        return _load_image_link(decision.remote, alt)
    return html_lib.escape(alt)


def _load_image_link(image: RemoteImage, alt: str) -> str:
    """A link to our image viewer (``chat.views.image_viewer``), which ``app.js`` opens in place."""
    query = {"src": image.url, "alt": alt} if alt else {"src": image.url}
    href = f"{_viewer_path()}?{urlencode(query)}"
    if alt:
        text = _("Load image from %(host)s: %(alt)s") % {"host": image.label, "alt": alt}
    else:
        text = _("Load image from %(host)s") % {"host": image.label}
    return (
        f'<a class="remote-image" href="{html_lib.escape(href)}" '
        f'title="{html_lib.escape(image.url)}">{html_lib.escape(text)}</a>'
    )


@functools.cache
def _viewer_path() -> str:
    return reverse("chat:remote-image")


# A tail that is one line of prose: starts with a letter, then only letters, digits, spaces and
# punctuation that means nothing to markdown inside a line (so it is one paragraph) and that
# HTML-escaping and sanitizing leave as it is. Trailing spaces end a paragraph: not shown.
# No "$": it may open math (``chat.markdown_math``).
_PLAIN_LINE = re.compile(r"([^\W\d_](?:[^\W_]|[ ,.;:?!'\"()/%+=@#-])*?) *")
# Closing line of a code fence (CommonMark: up to 3 spaces, then 3+ backticks or tildes).
_FENCE_END = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
# Rendering options without highlighting, for a code block that is still being written.
_PLAIN_OPTIONS = OptionsDict({**_PARSER.options, "highlight": None})


def _open_fence(tokens: list[Token], lines: list[str]) -> bool:
    """True when the text ends inside a code fence that has no closing line yet."""
    last = tokens[-1] if tokens else None
    if last is None or last.type != "fence" or not last.map:
        return False
    first, end = last.map
    if end - 1 <= first or end > len(lines):
        return True
    closing = _FENCE_END.fullmatch(lines[end - 1].rstrip("\r\n"))
    return not (closing and closing[1][0] == last.markup[0] and len(closing[1]) >= len(last.markup))


@dataclass(frozen=True)
class TailRender:
    """What one flush produced: blocks that became final, the open tail's HTML, and the text
    of that open tail (kept for the next flush).

    ``append_at``: where in ``tail_html`` text added to the end of ``rest`` would show, when
    the next flush may append it there instead of parsing the block again (``extend_tail``);
    ``in_code``: that place is inside an open code block (anything but a line end appends;
    ``new_lines``: whole lines too, when none could close the block);
    ``paragraph``: the tail is one paragraph of the answer's own (in no list or quote), which
    a blank line finishes."""

    new_blocks: list[str]
    tail_html: str
    rest: str
    append_at: int | None = None
    in_code: bool = False
    new_lines: bool = False
    paragraph: bool = False


# Appending to the open tail without parsing it again (``extend_tail``). What is appended has no
# line end, so the block's kind and every line's start are settled; then it cannot change
# how the text before it renders when:
# - prose: it holds none of the characters inline markdown acts on (escapes, entities, code,
#   emphasis, strikethrough, links, images, autolinks, math, table cells, heading closers),
#   and ends, like the text before it, on a character no rule continues from
#   (``_settled_end``: not a delimiter, space, bracket, colon or "#"); the last line holds a
#   letter, so it is no list marker, rule or table delimiter row waiting for its next character;
# - code: the open fence's last line has a character that cannot be part of a closing fence;
# - a blank line after a paragraph of the answer's own: the paragraph is final, and only the
#   next block is parsed (``_next_paragraph``).
# ``test_markdown.py`` checks all of it against a full parse on thousands of random texts.
_PROSE_ACTIVE = frozenset("\\`*_[]()!<>$~&|#;")
_SETTLED_ASCII = frozenset(".,?'\"%/+=-{}^@")
_FENCE_CHARS = frozenset(" \t`~")
_CLOSING_TAG = re.compile(r"</[a-z0-9]+>")
_CODE_END = "</code></pre>\n"


def _settled_end(char: str) -> bool:
    if char.isascii():
        return char.isalnum() or char in _SETTLED_ASCII
    return char.isprintable() and not char.isspace()


def _last_line(text: str) -> str:
    return text[max(text.rfind("\n"), text.rfind("\r")) + 1 :]


def _prose_append_point(text: str, html: str) -> int | None:
    """Where prose appended to ``text`` shows in its ``html``: right after its last character."""
    if not text or not _settled_end(text[-1]) or not any(c.isalpha() for c in _last_line(text)):
        return None
    at = _closing_tags_start(html)
    return at if html[at - 1 : at] == text[-1] else None


def _closing_tags_start(html: str) -> int:
    """Where the closing tags and line ends at the end of ``html`` begin."""
    at = len(html)
    while at:
        if html[at - 1] == "\n":
            at -= 1
            continue
        start = html.rfind("</", 0, at)
        if start < 0 or not _CLOSING_TAG.fullmatch(html, start, at):
            break
        at = start
    return at


def _code_append_point(fence: Token, lines: int, text: str, html: str) -> int | None:
    """Where code appended to ``text`` (inside the open ``fence``, on the last of the ``lines``
    parsed) shows in its ``html``."""
    line = _last_line(text)
    if lines - 1 <= fence.map[0] or not set(line) - _FENCE_CHARS or not html.endswith(_CODE_END):
        return None  # still on the opening line, or the line could become the closing fence
    return len(html) - len(_CODE_END)


def _append_point(tokens: list[Token], lines: int, text: str, html: str) -> int | None:
    """Where prose appended to ``text`` shows: after the last inline content of the block, when
    that content is on the last of the ``lines`` parsed and only closing tags follow it."""
    inline = next((i for i in range(len(tokens) - 1, -1, -1) if tokens[i].type == "inline"), None)
    if inline is None or any(t.nesting != -1 for t in tokens[inline + 1 :]):
        return None
    where, content = tokens[inline].map, tokens[inline].content
    if not where or where[1] != lines or not content or not text.endswith(_last_line(content)):
        # The text ends past it: a link reference definition (which renders as nothing), or
        # a table row's cell beyond the header's columns (dropped).
        return None
    if content.startswith("["):
        return None  # an unfinished link reference definition: a quote could complete it
    return _prose_append_point(text, html)


def extend_tail(
    previous: TailRender, text: str, images: ImagePolicy | None = None
) -> TailRender | None:
    """``render_tail(text)`` without parsing what was rendered before, when ``text`` is
    ``previous.rest`` with a piece added that cannot change it; None: render it all."""
    at = previous.append_at
    if at is None or not text.startswith(previous.rest):
        return None
    piece = text[len(previous.rest) :]
    if previous.in_code:
        if not _appendable_code(piece, previous.new_lines):
            return None
        shown = piece.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    elif _appendable_prose(piece):
        shown = piece
    else:
        return _next_paragraph(previous, text, images)
    html = previous.tail_html
    # Not dataclasses.replace: it looks the fields up again at every call (once per delta).
    return TailRender(
        [],
        html[:at] + shown + html[at:],
        text,
        at + len(shown),
        previous.in_code,
        previous.new_lines,
        previous.paragraph,
    )


def _appendable_code(piece: str, new_lines: bool) -> bool:
    """Code that shows as it is: printable, and each line it starts (when it may) has a
    character no closing fence has, or is empty but for the last (which the next piece
    continues)."""
    if not piece.replace("\t", " ").replace("\n", " ").isprintable():
        return False
    if "\n" not in piece:
        return True
    *between, last = piece.split("\n")[1:]
    closing = _FENCE_CHARS.issuperset
    return new_lines and not closing(last) and all(not a or not closing(a) for a in between)


def _appendable_prose(piece: str) -> bool:
    return piece.isprintable() and _settled_end(piece[-1]) and _PROSE_ACTIVE.isdisjoint(piece)


def _next_paragraph(
    previous: TailRender, text: str, images: ImagePolicy | None
) -> TailRender | None:
    """A paragraph finished by a blank line (what comes after it cannot change it, but a link
    reference definition), and the start of the next block rendered alone."""
    if not previous.paragraph:
        return None
    head, blank, after = text[len(previous.rest) :].partition("\n\n")
    start = after.lstrip("\n")
    if not blank or not start[:1].strip() or start[0] == "[" or "[" in previous.rest + head:
        # Parsed with the paragraph: a next block that starts indented (the full parse keeps
        # its first line as it is), or any "[" (a link and its reference definition).
        return None
    if head and not _appendable_prose(head):
        return None
    at, html = previous.append_at, previous.tail_html
    following = render_tail(start, images)
    finished = "".join([html[:at], head, html[at:], *following.new_blocks])
    following.new_blocks[:] = [finished]  # its own list, made by render_tail just now
    return following


def render_tail(text: str, images: ImagePolicy | None = None) -> TailRender:
    """Render the open part of a streamed answer. Pure (no shared state), so a long tail can be
    rendered in a worker thread while the event loop goes on."""
    plain = _PLAIN_LINE.fullmatch(text.strip("\n"))
    if plain is not None:
        # One line of plain prose (the usual tail): what the parser and sanitizer would
        # produce, without them. It contains no markup characters and nothing to escape.
        html = f"<p>{plain[1]}</p>\n"
        return TailRender([], html, text, _prose_append_point(text, html), paragraph=True)
    new_blocks: list[str] = []
    env: dict = {}
    tokens = _PARSER.parse(text, env)
    # As the parser counts them: it reads "\r\n" and a lone "\r" as line ends too.
    line_count = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    lines = text.splitlines(keepends=True)
    tops = [i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0 and t.map]
    if len(tops) > 1:
        # Everything before the last top-level block can no longer change its rendering:
        # render those tokens once, and keep only the last block's text as the tail.
        cut = tokens[tops[-1]].map[0]
        finished, text = "".join(lines[:cut]), "".join(lines[cut:])
        if finished.strip():
            new_blocks.append(_render_tokens(tokens[: tops[-1]], images=images))
        tokens = tokens[tops[-1] :]
    open_fence = _open_fence(tokens, lines)
    html = _render_tokens(tokens, _PLAIN_OPTIONS if open_fence else None, images)
    if open_fence:
        at = _code_append_point(tokens[-1], line_count, text, html)
        # Lines keep their indent when the fence has none (else it is taken off each line).
        new_lines = text.lstrip("\n")[:1] in ("`", "~")
        return TailRender(new_blocks, html, text, at, in_code=True, new_lines=new_lines)
    if len(tops) > 1 and env.get("references"):
        # Its links used definitions in the blocks cut off: parsed alone, the tail would not.
        return TailRender(new_blocks, html, text)
    at = _append_point(tokens, line_count, text, html)
    paragraph = len(tokens) == 3 and tokens[0].type == "paragraph_open"
    return TailRender(new_blocks, html, text, at, paragraph=paragraph)


class StreamingMarkdown:
    """Renders a growing markdown text in finished blocks plus one open tail.

    Call ``append`` with each delta and ``flush`` when the page should be updated. ``flush``
    returns the HTML of blocks that became final since the last flush (append them once) and
    the HTML of the open tail (replace it each time). Only the tail is parsed again, once per
    flush, so the total cost stays linear in the length of the answer; plain text added where
    the last render allows it is appended to the tail's HTML without parsing (``appended``).

    ``flush`` is ``take`` + (``appended`` or ``render_tail``) + ``commit``: the runner renders
    a long tail (one huge list or table is one block) in a worker thread between the two, on
    the event loop.

    A code block that is still open (no closing fence yet) streams as plain escaped code: it is
    highlighted once it is closed. Highlighting it again at every flush cost ten times more than
    the rest of the flush. Everything streamed is sanitized like a whole render.
    """

    def __init__(self, images: ImagePolicy | None = None) -> None:
        self.images = images  # None: the site's, at each flush
        self.blocks: list[str] = []
        self._tail = ""
        self._pending: list[str] = []
        self.tail_html = ""
        self._last = TailRender([], "", "")

    def append(self, delta: str) -> None:
        if delta:
            self._pending.append(delta)

    def take(self) -> str | None:
        """The open text to render now, or None when nothing arrived since the last flush.
        Deltas appended before ``commit`` wait for the next flush."""
        if not self._pending:
            return None
        self._tail += "".join(self._pending)
        self._pending.clear()
        return self._tail

    def commit(self, rendered: TailRender | None) -> tuple[list[str], str]:
        """Apply what ``render_tail`` made of the text ``take`` returned (None: nothing new)."""
        if rendered is None:
            return [], self.tail_html
        self._last = rendered
        self._tail = rendered.rest
        self.blocks.extend(rendered.new_blocks)
        self.tail_html = rendered.tail_html
        return rendered.new_blocks, rendered.tail_html

    def appended(self, text: str) -> TailRender | None:
        """What ``take``'s text renders to without parsing it, when only plain text was added
        where the last render allows it (``extend_tail``); None: ``render_tail`` it."""
        return extend_tail(self._last, text, self.images)

    def flush(self) -> tuple[list[str], str]:
        text = self.take()
        if text is None:
            return self.commit(None)
        return self.commit(self.appended(text) or render_tail(text, self.images))


def _render_tokens(
    tokens: list[Token], options: OptionsDict | None = None, images: ImagePolicy | None = None
) -> str:
    html = _PARSER.renderer.render(tokens, options or _PARSER.options, {}) if tokens else ""
    return sanitize(html, images) if html else ""
