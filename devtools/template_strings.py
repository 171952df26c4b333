"""Text in a template that a reader sees but no translate tag covers (tests/test_i18n.py).

A template's source is read as the browser would get it with every translation tag taken out:
comments, ``{% translate %}``/``{% blocktranslate %}…{% endblocktranslate %}``, variables and
other tags removed; what is left of the text nodes and of the attributes a reader meets
(title, aria-label, placeholder, alt, hx-confirm, a button's value) must hold no words. Code
(``<code>``, ``<kbd>``, ``<pre>``) is not prose. Literal strings handed to an include
(``with caption="…"``) or to ``|default:"…"`` must be ``_("…")``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

# Not words to translate: the brand, and units/symbols that read the same in every language.
ALLOWED = {"Switchboard"}

_COMMENTS = re.compile(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}|{#.*?#}", re.S)
_BLOCK_TRANSLATIONS = re.compile(
    r"{%\s*blocktrans(?:late)?\b.*?%}.*?{%\s*endblocktrans(?:late)?\s*%}", re.S
)
_TAG = re.compile(r"{%.*?%}", re.S)
_VARIABLE = re.compile(r"{{.*?}}", re.S)
# Literals in tags that end up on the page: `with name="Text"` (include/with) and default:"Text".
_TAG_LITERAL = re.compile(r"""(?:\b\w+=|\|default:)(["'])([^"']*)\1""")
_WORD = re.compile(r"[^\W\d_]{2,}")
_READ_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt", "hx-confirm", "label"}
_CODE_ELEMENTS = {"code", "kbd", "pre", "script", "style"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip


def _words(text: str) -> list[str]:
    return [word for word in _WORD.findall(text) if word not in ALLOWED]


class _TextFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        checked = set(_READ_ATTRIBUTES)
        if tag == "input" and values.get("type") in {"submit", "button", "reset"}:
            checked.add("value")
        for name, value in attrs:
            if name in checked and value and _words(value):
                self.found.append(f'<{tag} {name}="{value}">')
        if tag not in _VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if not _CODE_ELEMENTS.intersection(self.open) and _words(data):
            self.found.append(data.strip())


def unmarked(source: str) -> list[str]:
    """The visible strings of one template's source that are not marked for translation."""
    source = _BLOCK_TRANSLATIONS.sub("", _COMMENTS.sub("", source))
    found = [
        f"literal {literal!r} in {tag!r}"
        for tag in _TAG.findall(source)
        if not re.match(r"{%\s*(?:translate|trans)\b", tag)
        for _, literal in _TAG_LITERAL.findall(tag)
        if _words(literal) and not tag.startswith(("{% url", "{% partial"))
    ]
    finder = _TextFinder()
    finder.feed(_VARIABLE.sub("", _TAG.sub("", source)))
    finder.close()
    return found + finder.found


def unmarked_in(directory: Path) -> dict[str, list[str]]:
    """``unmarked`` for every template under ``directory``, by path; only those with some."""
    results = {}
    for path in sorted(directory.rglob("*.html")):
        strings = unmarked(path.read_text(encoding="utf-8"))
        if strings:
            results[str(path.relative_to(directory))] = strings
    return results
