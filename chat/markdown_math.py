"""Math in answers: ``$…$``, ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]`` rendered as MathML.

A markdown-it plugin: ``mdit_py_plugins``' dollarmath finds the dollar forms (with its rules
that keep prices as text: no digit right after the closing ``$`` and no space inside the
delimiters, so "$5 and $10" stays text), and two small rules of our own find the bracket forms.
``latex2mathml`` turns the LaTeX into MathML; what it makes is cleaned by the same nh3
allow-list as every answer (``chat.markdown``), which knows only presentational MathML
elements and attributes (no ``href``, ``style`` or anything that can carry script).

LaTeX that does not convert shows as its source text (escaped), so a bad formula never fails
a turn. Conversions are cached: the open tail of a streamed answer is rendered again at each
flush, and its formulas with it.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Callable, Sequence
from xml.etree.ElementTree import tostring

from latex2mathml.converter import convert_to_element
from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin

# Longer formulas are shown as source: the converter's cost grows faster than their length.
MAX_LATEX_CHARS = 4000

# latex2mathml writes symbols as numeric references in the element text ("&#x0002B;"), which
# serializing escapes to "&amp;#x0002B;". Only those are turned back (a numeric reference is
# one character, never markup); its own ``convert`` unescapes everything, and would let
# ``\text{<img onerror=…>}`` out as a tag.
_ESCAPED_NUMERIC_REFERENCE = re.compile(r"&amp;(#x[0-9A-Fa-f]{1,6};)")

MATHML_TAGS = {
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup",
    "mfrac", "msqrt", "mroot", "munder", "mover", "munderover", "mtable", "mtr", "mtd",
    "mstyle", "mpadded", "mphantom", "menclose", "merror", "mmultiscripts", "mprescripts",
    "none",
}  # fmt: skip
# Presentation only. Never ``href`` (latex2mathml writes ``\href`` as one), ``style``
# (``\style``; the Content-Security-Policy forbids inline styles anyway), ``class``/``id`` or
# events. ``mathcolor`` takes a colour (``\color``), not a URL.
_MATHML_ATTRIBUTES = {
    "display", "displaystyle", "mathvariant", "mathsize", "mathcolor", "stretchy", "fence",
    "separator", "accent", "accentunder", "largeop", "movablelimits", "symmetric", "minsize",
    "maxsize", "lspace", "rspace", "linethickness", "width", "height", "depth", "voffset",
    "notation", "linebreak", "columnalign", "rowalign", "columnspacing", "rowspacing",
    "columnlines", "rowlines", "frame", "scriptlevel",
}  # fmt: skip
MATHML_ATTRIBUTES = {tag: _MATHML_ATTRIBUTES for tag in MATHML_TAGS}


@functools.lru_cache(maxsize=1024)
def latex_to_mathml(latex: str, display: bool) -> str | None:
    """The MathML of one formula, or None when it does not convert."""
    if not latex.strip() or len(latex) > MAX_LATEX_CHARS:
        return None
    try:
        element = convert_to_element(latex, display="block" if display else "inline")
        # The xmlns attribute is implied by the <math> tag in HTML: nothing to keep.
        element.attrib.pop("xmlns", None)
        markup = tostring(element, encoding="unicode")
    except Exception:  # any converter failure: show the source instead
        return None
    return _ESCAPED_NUMERIC_REFERENCE.sub(r"&\1", markup)


def _math_html(latex: str, display: bool, source: str) -> str:
    """MathML, or the source as code when it does not convert."""
    mathml = latex_to_mathml(latex.strip(), display)
    return (
        mathml
        if mathml is not None
        else f'<code class="math-source">{html_lib.escape(source)}</code>'
    )


def _render_rule(display: bool, block: bool, opening: str, closing: str) -> Callable[..., str]:
    """A markdown-it render rule; a block of its own is wrapped (it scrolls when too wide)."""

    def render(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: dict) -> str:
        content = tokens[idx].content
        html = _math_html(content, display, f"{opening}{content}{closing}")
        return f'<div class="math">{html}</div>\n' if block else html

    return render


def _bracket_inline(state: StateInline, silent: bool) -> bool:
    """``\\(…\\)`` within a line of text (before markdown's backslash escapes)."""
    if not state.src.startswith("\\(", state.pos):
        return False
    end = state.src.find("\\)", state.pos + 2)
    if end < 0 or end == state.pos + 2:
        return False
    if not silent:
        token = state.push("math_inline_bracket", "math", 0)
        token.content = state.src[state.pos + 2 : end]
        token.markup = "\\("
    state.pos = end + 2
    return True


def _bracket_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """``\\[…\\]`` starting a block, on one line or several without a blank one (ends at the
    line holding ``\\]``)."""
    begin = state.bMarks[start_line] + state.tShift[start_line]
    if state.is_code_block(start_line) or not state.src.startswith("\\[", begin):
        return False
    close = state.src.find("\\]", begin + 2)
    line = start_line
    while close >= 0 and line < end_line and close > state.eMarks[line]:
        line += 1
        if state.isEmpty(line):
            return False  # no blank line inside, as for "$$" (see ``math_plugin``)
    if close < 0 or line >= end_line:
        return False
    if state.src[close + 2 : state.eMarks[line]].strip():
        return False  # text after "\]" on its line: not a block of its own
    if not silent:
        token = state.push("math_block_bracket", "math", 0)
        token.block = True
        token.content = state.src[begin + 2 : close]
        token.markup = "\\["
        token.map = [start_line, line + 1]
    state.line = line + 1
    return True


def _read_no_char_before_the_start(md: MarkdownIt) -> None:
    """dollarmath's "no digit before the opening $" reads ``src[pos - 1]``: at the start of a
    paragraph that is the paragraph's *last* character, so "$x$ is 1" stayed text and a formula
    at a paragraph's start flickered while its answer streamed. The rule runs there on a source
    ending in a character that is no digit (nothing it can match reaches it)."""
    dollar = md.inline.ruler.__rules__[md.inline.ruler.__find__("math_inline")].fn

    def math_inline(state: StateInline, silent: bool) -> bool:
        if state.pos or not state.src[-1:].isdigit():
            return dollar(state, silent)
        src, state.src = state.src, state.src + "\x00"
        try:
            return dollar(state, silent)
        finally:
            state.src = src

    md.inline.ruler.at("math_inline", math_inline)


def math_plugin(md: MarkdownIt) -> None:
    """Add the four math forms to a parser, rendered as MathML (or source text)."""
    # No blank line inside display math (LaTeX has none either): a streamed block that is
    # finished must not become part of a formula when a later "$$" arrives.
    dollarmath_plugin(
        md,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    _read_no_char_before_the_start(md)
    md.inline.ruler.before("escape", "math_inline_bracket", _bracket_inline)
    md.block.ruler.before(
        "fence", "math_block_bracket", _bracket_block, {"alt": ["paragraph", "blockquote"]}
    )
    md.add_render_rule("math_inline", _render_rule(False, False, "$", "$"))
    md.add_render_rule("math_inline_double", _render_rule(True, False, "$$", "$$"))
    md.add_render_rule("math_block", _render_rule(True, True, "$$", "$$"))
    md.add_render_rule("math_inline_bracket", _render_rule(False, False, "\\(", "\\)"))
    md.add_render_rule("math_block_bracket", _render_rule(True, True, "\\[", "\\]"))
